"""dlcourse.style: Gram matrices, the three losses, the frozen extractor and style_transfer."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from dlcourse.exercises import WrongAnswerError, check
from dlcourse.style import FeatureExtractor, content_loss, gram, style_loss, style_transfer, tv_loss

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite_pytorch") is None,
    reason="EfficientNet-Lite0 model code is not installed",
)


@pytest.fixture(scope="module")
def random_net():
    from dlcourse.vision import efficientnet_lite0

    torch.manual_seed(0)
    return efficientnet_lite0(pretrained=False)


def _maps(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_gram_matches_einsum_and_is_normalised_by_chw():
    x = _maps(2, 4, 5, 6)
    expected = torch.einsum("nchw,ndhw->ncd", x, x) / (4 * 5 * 6)
    torch.testing.assert_close(gram(x), expected)
    f = x.flatten(2)
    torch.testing.assert_close(gram(x), torch.bmm(f, f.transpose(1, 2)) / f[0].numel())
    # all-ones maps: every entry is h w / (c h w) = 1 / c
    torch.testing.assert_close(gram(torch.ones(1, 4, 3, 3)), torch.full((1, 4, 4), 0.25))


def test_gram_is_symmetric_psd_and_ignores_spatial_order():
    x = _maps(3, 5, 4, 4, seed=1)
    g = gram(x)
    torch.testing.assert_close(g, g.transpose(1, 2))
    assert torch.linalg.eigvalsh(g).min() > -1e-6
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = x.flatten(2)[..., perm].reshape(x.shape)
    torch.testing.assert_close(gram(shuffled), g)


def test_content_loss_is_the_mean_squared_error():
    a, b = _maps(2, 3, 4, 4), _maps(2, 3, 4, 4, seed=1)
    torch.testing.assert_close(content_loss(a, b), F.mse_loss(a, b))
    assert content_loss(a, a).item() == 0.0
    assert content_loss(torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, 3.0]]]])).item() == 5.0


def test_style_loss_hand_computed():
    # one position with features (1, 1): gram = [[1, 1], [1, 1]] / 2; against zeros: 4 * 1/4 = 1
    y_hat = torch.ones(1, 2, 1, 1)
    assert style_loss(y_hat, torch.zeros(2, 2)).item() == pytest.approx(1.0)
    assert style_loss(y_hat, gram(y_hat)).item() == 0.0
    x = _maps(3, 4, 2, 5)
    target = _maps(1, 4, 4, seed=2)
    expected = ((gram(x) - target) ** 2).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(style_loss(x, target), expected)


def test_tv_loss_matches_direct_formula_and_known_values():
    x = _maps(2, 3, 5, 4)
    down = sum(
        (x[:, :, i + 1, j] - x[:, :, i, j]).abs().sum() for i in range(4) for j in range(4)
    ) / (2 * 3 * 4 * 4)
    right = sum(
        (x[:, :, i, j + 1] - x[:, :, i, j]).abs().sum() for i in range(5) for j in range(3)
    ) / (2 * 3 * 5 * 3)
    torch.testing.assert_close(tv_loss(x), (down + right) / 2)
    assert tv_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0
    i, j = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    board = (1.0 - 2.0 * ((i + j) % 2)).float().expand(1, 1, 6, 6)
    assert tv_loss(board).item() == pytest.approx(2.0)


def test_losses_reject_bad_input():
    with pytest.raises(ValueError, match="x must be"):
        gram(torch.zeros(3, 4, 4))
    with pytest.raises(TypeError, match="x must be a float"):
        gram(torch.zeros(1, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="y_hat and y"):
        content_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="gram_y"):
        style_loss(torch.zeros(1, 2, 3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="H, W >= 2"):
        tv_loss(torch.zeros(1, 3, 1, 5))


@needs_model
def test_extractor_features_equal_the_networks_own_activations(random_net):
    ext = FeatureExtractor(random_net, ["stem", "block1", "block4"])
    captured = {}
    hooks = [
        random_net._blocks[0].register_forward_pre_hook(
            lambda m, args: captured.__setitem__("stem", args[0])
        ),
        random_net._blocks[1].register_forward_hook(
            lambda m, args, out: captured.__setitem__("block1", out)
        ),
        random_net._blocks[4].register_forward_hook(
            lambda m, args, out: captured.__setitem__("block4", out)
        ),
    ]
    x = _maps(2, 3, 64, 64)
    try:
        with torch.no_grad():
            random_net(x)
            features = ext(x)
    finally:
        for hook in hooks:
            hook.remove()
    assert list(features) == ["stem", "block1", "block4"]
    for name, value in features.items():
        torch.testing.assert_close(value, captured[name])
    assert features["stem"].shape == (2, 32, 32, 32)


@needs_model
def test_gradients_reach_the_pixels_and_not_the_frozen_network(random_net):
    ext = FeatureExtractor(random_net, ["stem", "block2"])
    ext.train()  # stays in eval mode
    assert not ext.model.training
    x = _maps(1, 3, 32, 32).requires_grad_(True)
    feats = ext(x)
    (style_loss(feats["stem"], torch.zeros(32, 32)) + feats["block2"].square().mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in ext.model.parameters())


@needs_model
def test_extractor_rejects_bad_input(random_net):
    with pytest.raises(ValueError, match="layers"):
        FeatureExtractor(random_net, ["block99"])
    with pytest.raises(ValueError, match="layers"):
        FeatureExtractor(random_net, [])
    with pytest.raises(TypeError, match="model"):
        FeatureExtractor(torch.nn.Linear(2, 2), ["stem"])
    with pytest.raises(ValueError, match="3 channels"):
        FeatureExtractor(random_net, ["stem"])(torch.zeros(1, 1, 16, 16))


@needs_model
def test_style_transfer_runs_keeps_pixels_valid_and_records_history(random_net):
    ext = FeatureExtractor(random_net, ["stem", "block1"])
    content, style = torch.rand(3, 32, 32), torch.rand(3, 40, 40)
    image, history = style_transfer(content, style, ext, ["block1"], ["stem"], steps=3)
    assert image.shape == (1, 3, 32, 32)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(history) == {"content", "style", "tv", "total"}
    assert all(len(values) == 4 for values in history.values())
    assert history["content"][0] == 0.0  # content initialisation
    _, same = style_transfer(content, content, ext, ["block1"], ["stem"], steps=0)
    assert same["style"] == [0.0]  # the style image's own Gram matrices
    gen = torch.Generator().manual_seed(0)
    noisy, h = style_transfer(content, style, ext, ["block1"], ["stem"], steps=0, init="noise",
                              generator=gen)  # fmt: skip
    assert h["content"][0] > 0 and noisy.shape == (1, 3, 32, 32)


@needs_model
def test_style_transfer_rejects_bad_input(random_net):
    ext = FeatureExtractor(random_net, ["stem", "block1"])
    c = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="content"):
        style_transfer(torch.rand(1, 16, 16), c, ext, ["block1"], ["stem"])
    with pytest.raises(ValueError, match="style_layers"):
        style_transfer(c, c, ext, ["block1"], ["block5"])
    with pytest.raises(ValueError, match="weights"):
        style_transfer(c, c, ext, ["block1"], ["stem"], weights=(1.0, -1.0, 0.0))
    with pytest.raises(ValueError, match="init"):
        style_transfer(c, c, ext, ["block1"], ["stem"], init="zeros")
    with pytest.raises(TypeError, match="extractor"):
        style_transfer(c, c, random_net, ["block1"], ["stem"])


def test_exercise_checks_catch_typical_mistakes():
    with pytest.raises(WrongAnswerError, match="h w"):
        check("ex-style-gram", lambda x: torch.einsum("nchw,ndhw->ncd", x, x) / x[0, 0].numel())
    with pytest.raises(WrongAnswerError, match="divide by 2"):
        check(
            "ex-style-tv",
            lambda x: x.diff(dim=-2).abs().mean() + x.diff(dim=-1).abs().mean(),
        )
    with pytest.raises(WrongAnswerError, match="not shuffled"):
        check("ex-style-shuffle", lambda y, generator: y.clone())
    with pytest.raises(WrongAnswerError, match="feature vectors changed"):

        def per_channel(y, generator):
            n, c, h, w = y.shape
            flat = y.reshape(n, c, h * w)
            idx = torch.stack([torch.randperm(h * w, generator=generator) for _ in range(c)])
            return flat.gather(2, idx.expand(n, c, h * w)).reshape(y.shape)

        check("ex-style-shuffle", per_channel)
