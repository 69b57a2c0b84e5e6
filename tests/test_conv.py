"""dlcourse.conv against torch's built-ins, hand-computed cases and bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.conv import (
    check_equivariance,
    conv1d_full,
    conv2d_im2col,
    conv2d_naive,
    conv_output_size,
    conv_params,
    corr2d,
    dense_equivalent_params,
    im2col,
)
from dlcourse.exercises import WrongAnswerError, check


def _random_configs(count: int, seed: int):
    """Random layer settings covering stride 1-3, padding 0-2, dilation 1-2, groups 1/2/C_in."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        groups = int(rng.choice([1, 2, 4]))
        c_in, c_out = 4, groups * int(rng.integers(1, 3))
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        size = (int(rng.integers(7, 12)), int(rng.integers(7, 12)))
        batch = int(rng.integers(1, 3))
        yield (
            batch,
            c_in,
            c_out,
            size,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bool(rng.random() < 0.5),
        )


def _tensors(batch, c_in, c_out, size, kernel, groups, has_bias, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c_in, *size, generator=gen, dtype=dtype)
    w = torch.randn(c_out, c_in // groups, *kernel, generator=gen, dtype=dtype)
    b = torch.randn(c_out, generator=gen, dtype=dtype) if has_bias else None
    return x, w, b


# ---------------------------------------------------------------------------------------------
# 1-D convolution and single-channel cross-correlation


@pytest.mark.parametrize(("len_f", "len_g"), [(1, 1), (5, 3), (3, 5), (8, 8), (10, 1)])
def test_conv1d_full_matches_numpy_convolve(len_f, len_g):
    gen = torch.Generator().manual_seed(len_f * 10 + len_g)
    f, g = torch.randn(len_f, generator=gen), torch.randn(len_g, generator=gen)
    expected = np.convolve(f.numpy(), g.numpy())
    torch.testing.assert_close(conv1d_full(f, g), torch.from_numpy(expected))
    flipped = np.correlate(f.numpy(), g.numpy()[::-1], "full")  # convolution = flipped correlation
    torch.testing.assert_close(conv1d_full(f, g), torch.from_numpy(flipped))


def test_conv1d_full_hand_computed_and_commutative():
    f, g = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 0.5])
    torch.testing.assert_close(conv1d_full(f, g), torch.tensor([0.0, 1.0, 2.5, 4.0, 1.5]))
    torch.testing.assert_close(conv1d_full(f, g), conv1d_full(g, f))


def test_conv1d_full_is_conv1d_with_flipped_kernel():
    gen = torch.Generator().manual_seed(1)
    f, g = torch.randn(9, generator=gen), torch.randn(4, generator=gen)
    expected = F.conv1d(f.view(1, 1, -1), g.flip(0).view(1, 1, -1), padding=len(g) - 1)
    torch.testing.assert_close(conv1d_full(f, g), expected.flatten())


def test_corr2d_hand_computed():
    x = torch.arange(9.0).view(3, 3)
    k = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    torch.testing.assert_close(corr2d(x, k), torch.tensor([[19.0, 25.0], [37.0, 43.0]]))


def test_corr2d_matches_conv2d():
    gen = torch.Generator().manual_seed(2)
    x, k = torch.randn(7, 9, generator=gen), torch.randn(3, 2, generator=gen)
    torch.testing.assert_close(corr2d(x, k), F.conv2d(x[None, None], k[None, None])[0, 0])


# ---------------------------------------------------------------------------------------------
# Multi-channel convolution


@pytest.mark.parametrize("config", list(_random_configs(20, seed=0)))
def test_conv2d_naive_matches_torch(config):
    batch, c_in, c_out, size, kernel, stride, padding, dilation, groups, has_bias = config
    if any(conv_output_size(n, k, s, p, d) < 1 for n, k, s, p, d in
           zip(size, kernel, stride, padding, dilation, strict=True)):  # fmt: skip
        pytest.skip("kernel does not fit")
    x, w, b = _tensors(batch, c_in, c_out, size, kernel, groups, has_bias)
    expected = F.conv2d(x, w, b, stride, padding, dilation, groups)
    torch.testing.assert_close(conv2d_naive(x, w, b, stride, padding, dilation, groups), expected)


def test_conv2d_im2col_matches_torch_on_many_configs():
    for i, config in enumerate(_random_configs(100, seed=1)):
        batch, c_in, c_out, size, kernel, stride, padding, dilation, groups, has_bias = config
        x, w, b = _tensors(batch, c_in, c_out, size, kernel, groups, has_bias, seed=i)
        expected = F.conv2d(x, w, b, stride, padding, dilation, groups)
        got = conv2d_im2col(x, w, b, stride, padding, dilation, groups)
        torch.testing.assert_close(got, expected, msg=lambda m, c=config: f"{c}: {m}")


def test_conv2d_im2col_depthwise_and_pointwise():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 10, 10, generator=gen)
    depthwise = torch.randn(6, 1, 3, 3, generator=gen)
    torch.testing.assert_close(
        conv2d_im2col(x, depthwise, padding=1, groups=6),
        F.conv2d(x, depthwise, padding=1, groups=6),
    )
    pointwise, bias = torch.randn(4, 6, 1, 1, generator=gen), torch.randn(4, generator=gen)
    expected = torch.einsum("oc,nchw->nohw", pointwise[:, :, 0, 0], x) + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(conv2d_im2col(x, pointwise, bias), expected)


def test_conv2d_im2col_keeps_float64():
    x, w, b = _tensors(1, 2, 3, (6, 6), (3, 3), 1, True, dtype=torch.float64)
    got = conv2d_im2col(x, w, b, padding=1)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, F.conv2d(x, w, b, padding=1))


@pytest.mark.parametrize("config", list(_random_configs(12, seed=2)))
def test_im2col_matches_unfold(config):
    batch, c_in, _, size, kernel, stride, padding, dilation, _, _ = config
    x = torch.randn(batch, c_in, *size, generator=torch.Generator().manual_seed(4))
    expected = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    torch.testing.assert_close(im2col(x, kernel, stride, padding, dilation), expected)


def test_kernels_follow_their_inputs_device():
    x, w, b = _tensors(1, 2, 2, (5, 5), (3, 3), 1, True)
    x, w, b = x.to("meta"), w.to("meta"), b.to("meta")
    assert conv2d_im2col(x, w, b, padding=1).device.type == "meta"
    assert im2col(x, 3).device.type == "meta"


# ---------------------------------------------------------------------------------------------
# Sizes and counts


def test_conv_output_size_matches_conv2d_shapes():
    for n in (5, 8, 13, 28):
        for k, s, p, d in [(1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 0, 1), (5, 2, 2, 1), (3, 3, 2, 2),
                           (2, 2, 1, 3)]:  # fmt: skip
            conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, device="meta")
            if n + 2 * p < d * (k - 1) + 1:
                continue
            assert (
                conv_output_size(n, k, s, p, d)
                == conv(torch.empty(1, 1, n, n, device="meta")).shape[-1]
            )


def test_conv_output_size_floors_alexnet():
    assert conv_output_size(224, 11, stride=4) == 54  # (224 - 11) / 4 + 1 = 54.25
    assert conv_output_size(227, 11, stride=4) == 55
    assert conv_output_size(28, 3, stride=2, padding=1) == 14  # "same" padding, stride 2
    assert conv_output_size(32, 3, padding=2, dilation=2) == 32  # p = d (k - 1) / 2


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "groups", "bias"),
    [(3, 16, 3, 1, True), (64, 64, 3, 1, True), (64, 64, 3, 64, True), (8, 4, 1, 1, False),
     (6, 9, (3, 5), 3, True)],
)  # fmt: skip
def test_conv_params_matches_numel(c_in, c_out, k, groups, bias):
    conv = nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias, device="meta")
    assert conv_params(c_in, c_out, k, groups, bias) == sum(p.numel() for p in conv.parameters())


def test_conv_params_known_values():
    assert conv_params(3, 16, 3) == 448
    assert conv_params(64, 64, 3) == 36_928
    assert conv_params(64, 64, 3, groups=64) == 640


def test_dense_equivalent_params_matches_linear_on_meta():
    dense = nn.Linear(3 * 32 * 32, 16 * 32 * 32, device="meta")
    expected = sum(p.numel() for p in dense.parameters())
    assert dense_equivalent_params(3, 32, 32, 16, 32, 32) == expected == 50_348_032
    assert dense_equivalent_params(1, 2, 2, 1, 1, 1, bias=False) == 4


# ---------------------------------------------------------------------------------------------
# Equivariance


def _conv(**kwargs) -> nn.Conv2d:
    conv = nn.Conv2d(3, 4, 3, **kwargs)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
    return conv


def _roll(t, shift=1):
    return t.roll((shift, shift), dims=(-2, -1))


def test_check_equivariance_on_known_pairs():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    circular = _conv(padding=1, padding_mode="circular")
    strided = _conv(stride=2, padding=1, padding_mode="circular")
    assert check_equivariance(circular, _roll, _roll, x)
    assert not check_equivariance(strided, _roll, _roll, x)
    assert check_equivariance(strided, lambda t: _roll(t, 2), _roll, x)  # 2 px in, 1 px out
    rot = lambda t: t.rot90(1, dims=(-2, -1))  # noqa: E731
    assert not check_equivariance(circular, rot, rot, x)
    pooled = lambda t: circular(t).mean(dim=(-2, -1))  # noqa: E731
    assert check_equivariance(pooled, _roll, None, x)  # invariance after global pooling
    assert not check_equivariance(circular, _roll, None, x)  # the map itself moves


def test_check_equivariance_shape_mismatch_is_false():
    x = torch.randn(1, 3, 8, 8)
    assert not check_equivariance(lambda t: t, lambda t: t[..., :4], lambda t: t, x)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_inputs_name_the_argument():
    x, w = torch.randn(1, 4, 6, 6), torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="x must be a 4-D"):
        conv2d_im2col(x[0], w)
    with pytest.raises(ValueError, match="w must have shape"):
        conv2d_im2col(x, w, groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        conv2d_naive(x, torch.randn(3, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match="b must be None"):
        conv2d_im2col(x, w, torch.randn(3))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        conv2d_im2col(x, w, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        im2col(x, 3, padding=-1)
    with pytest.raises(TypeError, match="dilation must be an int or a pair"):
        im2col(x, 3, dilation=1.5)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        im2col(x, 0)
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(4, 3, dilation=2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        conv_output_size(0, 1)
    with pytest.raises(ValueError, match="groups=4 must divide"):
        conv_params(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="h_out must be >= 1"):
        dense_equivalent_params(3, 32, 32, 16, 0, 32)
    with pytest.raises(ValueError, match="g must be a non-empty 1-D"):
        conv1d_full(torch.ones(3), torch.ones(2, 2))
    with pytest.raises(ValueError, match="k must be a 2-D"):
        corr2d(torch.ones(4, 4), torch.ones(3))
    with pytest.raises(ValueError, match="must be non-empty and fit"):
        corr2d(torch.ones(2, 2), torch.ones(3, 3))
    with pytest.raises(TypeError, match="x must be a tensor"):
        check_equivariance(lambda t: t, lambda t: t, None, [1.0])


# ---------------------------------------------------------------------------------------------
# Exercise checks reject typical wrong answers


def test_im2col_exercise_rejects_missing_groups_and_flip():
    def no_groups(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        w_full = w.repeat(1, groups, 1, 1)
        return F.conv2d(x, w_full, b, stride, padding, dilation)

    def flipped(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(x, w.flip(-2, -1), b, stride, padding, dilation, groups)

    with pytest.raises(WrongAnswerError, match="groups=2"):
        check("ex-conv-im2col", no_groups)
    with pytest.raises(WrongAnswerError, match="true convolution"):
        check("ex-conv-im2col", flipped)


def test_output_size_exercise_hints():
    good = [28, 14, 13, 32, 26, 54]
    with pytest.raises(WrongAnswerError, match="floor"):
        check("ex-conv-output-size", ([28, 14, 13.5, 32, 26, 54], 227))
    with pytest.raises(WrongAnswerError, match="dilated kernel span"):
        check("ex-conv-output-size", ([28, 14, 13, 34, 26, 54], 227))
    with pytest.raises(WrongAnswerError, match="not an integer"):
        check("ex-conv-output-size", (good, 224))
    with pytest.raises(WrongAnswerError, match="smallest"):
        check("ex-conv-output-size", (good, 231))


def test_params_exercise_hints():
    answer = {"conv_3_16": 432, "dense_equivalent": 50_348_032, "conv_64_64": 36_928,
              "depthwise_64": 640}  # fmt: skip
    with pytest.raises(WrongAnswerError, match="biases"):
        check("ex-conv-params", answer)
    with pytest.raises(WrongAnswerError, match="C_in / groups"):
        check("ex-conv-params", {**answer, "conv_3_16": 448, "depthwise_64": 36_928})


def test_equivariance_exercise_rejects_wrong_predictions():
    all_true = dict.fromkeys(
        ("circular_conv_roll", "strided_conv_roll", "maxpool_roll", "conv_rot90"), True
    )
    with pytest.raises(WrongAnswerError, match="wrong values"):
        check("ex-conv-equivariance", all_true)
    with pytest.raises(WrongAnswerError, match="True or False"):
        check("ex-conv-equivariance", dict.fromkeys(all_true, "yes"))


def test_conv2d_im2col_handles_an_empty_batch():
    x, w = torch.randn(0, 4, 9, 8), torch.randn(6, 2, 3, 3)
    assert conv2d_im2col(x, w, None, groups=2).shape == F.conv2d(x, w, groups=2).shape
