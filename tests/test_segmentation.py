"""Chapter 3.6: transposed convolution (dlcourse.conv), segmentation data, metrics, U-Net, Dice."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcourse.conv import (
    bilinear_kernel,
    conv2d_im2col,
    conv_as_matrix,
    conv_output_size,
    conv_transpose2d,
    conv_transpose_output_size,
    trans_conv,
)
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.losses import dice_loss
from dlcourse.segmentation import (
    TinyUNet,
    UpBlock,
    binary_iou,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
    random_crop_pair,
    shapes_segmentation,
)

# ---------------------------------------------------------------------------------------------
# Transposed convolution


def test_trans_conv_d2l_example():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]])
    torch.testing.assert_close(trans_conv(x, x), expected)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 0), (2, 1), (3, 1), (1, 1)])
def test_trans_conv_matches_torch(stride, padding):
    gen = torch.Generator().manual_seed(stride * 10 + padding)
    x, k = torch.randn(4, 5, generator=gen), torch.randn(3, 2, generator=gen)
    expected = F.conv_transpose2d(x[None, None], k[None, None], stride=stride, padding=padding)
    torch.testing.assert_close(trans_conv(x, k, stride, padding), expected[0, 0])


def _transpose_configs(count: int, seed: int):
    """Random settings: stride 1-3, padding 0-2, output_padding, dilation 1-2, groups 1/2/4."""
    rng = np.random.default_rng(seed)
    made = 0
    while made < count:
        groups = int(rng.choice([1, 2, 4]))
        kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        out_pad = tuple(
            int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation, strict=True)
        )
        size = (int(rng.integers(3, 8)), int(rng.integers(3, 8)))
        try:
            for axis in (0, 1):
                conv_transpose_output_size(size[axis], kernel[axis], stride[axis], padding[axis],
                                           out_pad[axis], dilation[axis])  # fmt: skip
        except ValueError:
            continue
        made += 1
        yield groups, kernel, stride, padding, out_pad, dilation, size, bool(rng.random() < 0.5)


@pytest.mark.parametrize("config", list(_transpose_configs(40, seed=0)))
def test_conv_transpose2d_matches_torch(config):
    groups, kernel, stride, padding, out_pad, dilation, size, has_bias = config
    gen = torch.Generator().manual_seed(hash(config) % 2**31)
    c_in, c_out = 4, 2 * groups
    x = torch.randn(2, c_in, *size, generator=gen, dtype=torch.float64)
    w = torch.randn(c_in, c_out // groups, *kernel, generator=gen, dtype=torch.float64)
    b = torch.randn(c_out, generator=gen, dtype=torch.float64) if has_bias else None
    expected = F.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation)
    got = conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation)
    torch.testing.assert_close(got, expected)
    for axis in (0, 1):
        assert got.shape[2 + axis] == conv_transpose_output_size(
            size[axis], kernel[axis], stride[axis], padding[axis], out_pad[axis], dilation[axis]
        )


def test_conv_transpose2d_batch_of_one_and_gradients_flow():
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    w = torch.randn(3, 5, 3, 3, requires_grad=True)
    conv_transpose2d(x, w, stride=2, padding=1).square().sum().backward()
    x2, w2 = x.detach().requires_grad_(), w.detach().requires_grad_()
    F.conv_transpose2d(x2, w2, stride=2, padding=1).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


@pytest.mark.parametrize(
    "n, k, s, p, op, d",
    [(2, 2, 1, 0, 0, 1), (4, 4, 2, 1, 0, 1), (16, 4, 2, 1, 0, 1), (7, 64, 32, 16, 0, 1),
     (5, 3, 2, 1, 1, 1), (5, 3, 1, 0, 0, 2), (3, 3, 3, 2, 2, 1)],
)  # fmt: skip
def test_transpose_output_size_formula(n, k, s, p, op, d):
    measured = F.conv_transpose2d(torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1), stride=(s, 1),
                                  padding=(p, 0), output_padding=(op, 0), dilation=(d, 1))  # fmt: skip
    assert conv_transpose_output_size(n, k, s, p, op, d) == measured.shape[2]


def test_transpose_size_inverts_conv_size():
    for n in range(4, 12):
        for k, s, p in [(3, 2, 1), (4, 2, 1), (5, 3, 2)]:
            m = conv_output_size(n, k, s, p)
            back = conv_transpose_output_size(m, k, s, p)
            assert back <= n < back + s  # the conv's floor lost at most s - 1 rows
            assert conv_transpose_output_size(m, k, s, p, output_padding=n - back) == n


def test_adjoint_identity_and_matrix_transpose():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    C = conv_as_matrix(w, (6, 6), stride=2, padding=1)
    assert C.shape == (3 * 3 * 3, 2 * 6 * 6)
    x = torch.randn(1, 2, 6, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(1, 3, 3, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(C @ x.flatten(), F.conv2d(x, w, stride=2, padding=1).flatten())
    ct_y = conv_transpose2d(y, w, stride=2, padding=1, output_padding=1)
    torch.testing.assert_close(C.T @ y.flatten(), ct_y.flatten())
    lhs = torch.dot(C @ x.flatten(), y.flatten())
    rhs = torch.dot(x.flatten(), ct_y.flatten())
    torch.testing.assert_close(lhs, rhs)
    # the adjoint is not the inverse
    assert not torch.allclose(C.T @ (C @ x.flatten()), x.flatten(), atol=1e-2)


def test_conv_as_matrix_single_channel_groups_and_dilation():
    k = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    C = conv_as_matrix(k, (3, 3))
    assert C.shape == (4, 9)
    torch.testing.assert_close(C[0], torch.tensor([1.0, 2, 0, 3, 4, 0, 0, 0, 0]))
    w = torch.randn(4, 1, 2, 2, dtype=torch.float64)
    C = conv_as_matrix(w, (5, 5), padding=1, dilation=2, groups=2)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(
        C @ x.flatten(), conv2d_im2col(x, w, padding=1, dilation=2, groups=2).flatten()
    )


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_bilinear_kernel_matches_interpolate_in_the_interior(scale):
    x = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(scale))
    w = bilinear_kernel(3, 3, 2 * scale)
    up = F.conv_transpose2d(x, w, stride=scale, padding=scale // 2)
    ref = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape
    b = scale // 2  # border rows and columns that differ
    torch.testing.assert_close(up[..., b:-b, b:-b], ref[..., b:-b, b:-b])
    # the border: the transposed conv sees zeros outside, interpolate repeats the edge pixel
    ones = torch.ones(1, 3, 4, 4)
    up1 = F.conv_transpose2d(ones, w, stride=scale, padding=scale // 2)
    assert up1[..., b:-b, b:-b].allclose(torch.ones(1)) and (up1[..., 0, :] < 1).all()
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")  # repeat the edge, then crop: exact
    full = F.conv_transpose2d(padded, w, stride=scale, padding=scale // 2)
    torch.testing.assert_close(full[..., scale:-scale, scale:-scale], ref)


def test_bilinear_kernel_values_and_odd_size():
    w = bilinear_kernel(2, 2, 4)
    torch.testing.assert_close(w[0, 0, 0], torch.tensor([0.25, 0.75, 0.75, 0.25]) * 0.25)
    assert w[0, 1].abs().sum() == 0 and w[1, 0].abs().sum() == 0
    odd = bilinear_kernel(1, 1, 3)[0, 0]
    torch.testing.assert_close(odd[1], torch.tensor([0.5, 1.0, 0.5]))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: trans_conv(torch.ones(3), torch.ones(2, 2)), "x must"),
        (lambda: trans_conv(torch.ones(3, 3), torch.ones(2)), "k must"),
        (lambda: trans_conv(torch.ones(2, 2), torch.ones(2, 2), padding=2), "padding"),
        (lambda: conv_transpose2d(torch.ones(1, 3, 4, 4), torch.ones(2, 3, 3, 3)), "w must"),
        (lambda: conv_transpose2d(torch.ones(3, 4, 4), torch.ones(3, 3, 3, 3)), "x must"),
        (lambda: conv_transpose2d(torch.ones(1, 3, 4, 4), torch.ones(3, 1, 3, 3), groups=2),
         "groups"),
        (lambda: conv_transpose2d(torch.ones(1, 2, 4, 4), torch.ones(2, 1, 3, 3),
                                  b=torch.ones(3)), "b must"),
        (lambda: conv_transpose2d(torch.ones(1, 2, 4, 4), torch.ones(2, 1, 3, 3), stride=2,
                                  output_padding=2), "output_padding"),
        (lambda: conv_transpose_output_size(4, 3, stride=1, output_padding=1), "output_padding"),
        (lambda: conv_transpose_output_size(0, 3), "n must"),
        (lambda: conv_as_matrix(torch.ones(3), (4, 4)), "w must"),
        (lambda: conv_as_matrix(torch.ones(2, 2), (0, 4)), "in_hw"),
        (lambda: bilinear_kernel(3, 2, 4), "c_in"),
        (lambda: bilinear_kernel(3, 3, 0), "k must"),
    ],
)  # fmt: skip
def test_transposed_conv_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# Data


def test_shapes_segmentation_shapes_classes_and_seed():
    x, m = shapes_segmentation(20, size=32, seed=3)
    assert x.shape == (20, 1, 32, 32) and x.dtype == torch.float32
    assert m.shape == (20, 32, 32) and m.dtype == torch.long
    assert set(m.unique().tolist()) == {0, 1}
    assert (m.flatten(1).sum(1) > 0).all()  # every image has a shape
    x2, m2 = shapes_segmentation(20, size=32, seed=3)
    assert torch.equal(x, x2) and torch.equal(m, m2)
    _, m4 = shapes_segmentation(50, n_classes=4, seed=0)
    assert set(m4.unique().tolist()) == {0, 1, 2, 3}


def test_shapes_segmentation_masks_are_exact_without_noise():
    x, m = shapes_segmentation(30, noise=0.0, seed=1)
    assert ((x[:, 0] > 0) == (m > 0)).all()  # every bright pixel is labelled, and only those
    assert (x[:, 0][m > 0] >= 0.4).all()


def test_shapes_segmentation_bad_input():
    with pytest.raises(ValueError, match="n_classes"):
        shapes_segmentation(4, n_classes=3)
    with pytest.raises(ValueError, match="noise"):
        shapes_segmentation(4, noise=-1.0)
    with pytest.raises(ValueError, match="n must"):
        shapes_segmentation(0)


def test_random_crop_pair_keeps_image_and_mask_aligned():
    img = torch.arange(2 * 10 * 12.0).view(2, 10, 12)
    mask = torch.arange(120).view(10, 12)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        ci, cm = random_crop_pair(img, mask, 6, generator=gen)
        assert ci.shape == (2, 6, 6) and cm.shape == (6, 6)
        assert torch.equal(ci[0].long(), cm)  # same window: channel 0 equals the label grid
    with pytest.raises(ValueError, match="mask must have"):
        random_crop_pair(img, mask[:5], 4)
    with pytest.raises(ValueError, match="size"):
        random_crop_pair(img, mask, 11)


# ---------------------------------------------------------------------------------------------
# Metrics and the Dice loss


def test_metrics_on_hand_made_masks():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [0, 0, 0, 0]])
    pred = torch.tensor([[0, 0, 1, 0], [0, 1, 1, 1], [2, 2, 0, 0], [0, 0, 0, 0]])
    ious = per_class_iou(pred, target, 3)
    torch.testing.assert_close(ious, torch.tensor([7 / 11, 3 / 5, 2 / 4], dtype=torch.float64))
    assert mean_iou(pred, target, 3) == pytest.approx((7 / 11 + 3 / 5 + 2 / 4) / 3)
    assert pixel_accuracy(pred, target) == pytest.approx(12 / 16)
    assert binary_iou(pred == 1, target == 1) == pytest.approx(3 / 5)


def test_all_background_predictor_has_high_accuracy_but_zero_iou():
    target = torch.zeros(4, 10, 10, dtype=torch.long)
    target[:, 4:6, 4:6] = 1
    pred = torch.zeros_like(target)
    assert pixel_accuracy(pred, target) == pytest.approx(0.96)
    assert binary_iou(pred, target) == 0.0
    assert mean_iou(pred, target, 2) == pytest.approx(0.96 / 2)


def test_iou_conventions_for_empty_and_absent_classes():
    empty = torch.zeros(3, 3, dtype=torch.long)
    assert binary_iou(empty, empty) == 1.0
    ious = per_class_iou(empty, empty, 3)
    assert ious[0] == 1 and ious[1:].isnan().all()
    assert mean_iou(empty, empty, 3) == 1.0


def test_metrics_reject_bad_input():
    a = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="pred and target"):
        pixel_accuracy(a, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="pred must hold integer"):
        mean_iou(a.float(), a, 2)
    with pytest.raises(ValueError, match="target labels"):
        mean_iou(a, a + 2, 2)
    with pytest.raises(ValueError, match="pred must be a 0/1"):
        binary_iou(a + 2, a)


def test_dice_loss_formula_and_limits():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 5, 5, generator=gen)
    y = (torch.rand(3, 1, 5, 5, generator=gen) > 0.5).float()
    p = torch.sigmoid(logits).flatten(1)
    by_hand = 1 - (2 * (p * y.flatten(1)).sum(1) + 1) / (p.sum(1) + y.flatten(1).sum(1) + 1)
    torch.testing.assert_close(dice_loss(logits, y), by_hand.mean())
    perfect = torch.where(y > 0, 30.0, -30.0)
    assert dice_loss(perfect, y) < 1e-6
    background = torch.full_like(logits, -30.0)
    assert dice_loss(background, y) > 0.9  # BCE would call this a small loss on sparse masks
    with pytest.raises(ValueError, match="target must have the shape"):
        dice_loss(logits, y[:, 0])
    with pytest.raises(TypeError, match="logits"):
        dice_loss(y.long(), y)


# ---------------------------------------------------------------------------------------------
# U-Net


@pytest.mark.parametrize("levels, skip", [(1, True), (2, True), (3, True), (2, False)])
def test_tiny_unet_output_has_input_size(levels, skip):
    model = TinyUNet(in_ch=3, out_ch=4, base=4, levels=levels, skip=skip)
    x = torch.randn(2, 3, 16, 24)
    assert model(x).shape == (2, 4, 16, 24)
    for block, width in zip(model.up, [4 * 2**i for i in reversed(range(levels))], strict=True):
        first_conv = block.conv[0]
        assert first_conv.in_channels == width + (width if skip else 0)  # concatenated, not added


def test_tiny_unet_uses_its_skips_and_rejects_bad_shapes():
    block = UpBlock(8, 4, 4).eval()
    x = torch.randn(1, 8, 4, 4)
    skip = torch.randn(1, 4, 8, 8)
    assert block(x, skip).shape == (1, 4, 8, 8)
    assert not torch.allclose(block(x, skip), block(x, torch.zeros_like(skip)))
    with pytest.raises(ValueError, match="divisible"):
        TinyUNet(base=4, levels=2)(torch.randn(1, 1, 10, 16))
    with pytest.raises(ValueError, match="skip must have shape"):
        block(x, torch.randn(1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------
# Exercise checks reject typical wrong answers


def test_trans_conv_check_rejects_a_plain_convolution():
    def wrong(x, k, stride=1, padding=0):
        return F.conv2d(x[None, None], k[None, None], padding=k.shape[0] - 1)[0, 0]

    with pytest.raises(WrongAnswerError):
        check("ex-seg-trans-conv", wrong)


def test_adjoint_check_rejects_a_transposed_matrix():
    def wrong(k, in_hw, stride=1, padding=0):
        return conv_as_matrix(k, in_hw, stride, padding).T

    with pytest.raises(WrongAnswerError):
        check("ex-seg-conv-matrix", wrong)


def test_mean_iou_check_rejects_pixel_accuracy_and_absent_classes_as_zero():
    with pytest.raises(WrongAnswerError):
        check("ex-seg-mean-iou", lambda pred, target, num_classes: pixel_accuracy(pred, target))

    def absent_as_zero(pred, target, num_classes):
        return torch.nan_to_num(per_class_iou(pred, target, num_classes)).mean().item()

    with pytest.raises(WrongAnswerError, match="neither"):
        check("ex-seg-mean-iou", absent_as_zero)


def test_decoder_check_rejects_addition_instead_of_concatenation():
    class AddBlock(torch.nn.Module):
        def __init__(self, c_in, c_skip, c_out):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
            self.conv = torch.nn.Conv2d(c_out, c_out, 3, padding=1)

        def forward(self, x, skip):
            return torch.relu(self.conv(self.up(x) + skip[:, : self.conv.in_channels]))

    with pytest.raises(WrongAnswerError, match="concatenat"):
        check("ex-seg-decoder", AddBlock)


# ---------------------------------------------------------------------------------------------
# show_masks


def test_show_masks_draws_one_row_per_kind_and_checks_shapes():
    import matplotlib.pyplot as plt

    from dlcourse.plot import show_masks

    images, masks = shapes_segmentation(5, n_classes=4, seed=0)
    fig = show_masks(images, masks, masks, n=3)
    assert len(fig.axes) == 3 * 3
    plt.close(fig)
    fig = show_masks(images[:, 0], masks, n=8)  # (N, H, W) images; n larger than N
    assert len(fig.axes) == 2 * 5
    plt.close(fig)
    with pytest.raises(ValueError, match="masks must be"):
        show_masks(images, masks[:, :4])
    with pytest.raises(ValueError, match="predictions must be"):
        show_masks(images, masks, masks[:2])
