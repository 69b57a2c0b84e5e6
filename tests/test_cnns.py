"""Tests for dlcourse.cnns (chapter 3.3), conv.global_pool and train.count_modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcourse.cnns import (
    VGG_CONFIGS,
    BasicBlock,
    Bottleneck,
    DenseBlock,
    FPNTopDown,
    Inception,
    ResNetSmall,
    SEBlock,
    build_alexnet,
    build_resnet,
    build_vgg,
    nin_block,
    transition_block,
    vgg_block,
)
from dlcourse.conv import global_pool
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.train import count_modules, count_params, count_params_meta

# Published counts (torchvision's model documentation; AlexNet paper layout for the others).
PUBLISHED = {
    ("alexnet", "torchvision"): 61_100_840,
    ("alexnet", "grouped"): 60_965_224,
    ("alexnet", "ungrouped"): 62_378_344,
    ("vgg", "11"): 132_863_336,
    ("vgg", "13"): 133_047_848,
    ("vgg", "16"): 138_357_544,
    ("vgg", "19"): 143_667_240,
    ("resnet", 18): 11_689_512,
    ("resnet", 34): 21_797_672,
    ("resnet", 50): 25_557_032,
    ("resnet", 101): 44_549_160,
    ("resnet", 152): 60_192_808,
}


def test_alexnet_counts_match_published():
    assert count_params_meta(lambda: build_alexnet(variant="torchvision")) == 61_100_840
    assert count_params_meta(lambda: build_alexnet(grouped=True)) == 60_965_224
    assert count_params_meta(lambda: build_alexnet(grouped=False)) == 62_378_344


@pytest.mark.parametrize("cfg", sorted(VGG_CONFIGS))
def test_vgg_counts_match_published(cfg):
    assert count_params_meta(lambda: build_vgg(cfg)) == PUBLISHED[("vgg", cfg)]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_counts_match_published(depth):
    assert count_params_meta(lambda: build_resnet(depth)) == PUBLISHED[("resnet", depth)]


def test_resnet50_has_53_conv2d_modules():
    with torch.device("meta"):
        model = build_resnet(50)
    assert count_modules(model, nn.Conv2d) == 53
    assert count_modules(model, (nn.Conv2d, nn.Linear)) == 54


def test_alexnet_and_resnet_output_shapes():
    torch.manual_seed(0)
    assert build_alexnet(n_classes=7)(torch.randn(1, 3, 227, 227)).shape == (1, 7)
    assert build_resnet(18, n_classes=5)(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_vgg_block_halves_resolution_and_counts_18c2():
    block = vgg_block(2, 8, 8)
    assert block(torch.randn(2, 8, 12, 12)).shape == (2, 8, 6, 6)
    assert count_params(block) == 2 * (9 * 8 * 8 + 8)


def test_nin_block_shape():
    assert nin_block(3, 16, 11, 4, 0)(torch.randn(1, 3, 227, 227)).shape == (1, 16, 55, 55)


def test_inception_channels_and_params():
    block = Inception(192, 64, (96, 128), (16, 32), 32)
    assert block(torch.randn(1, 192, 7, 7)).shape == (1, 256, 7, 7)
    assert count_params(block) == 163_696


def test_basic_block_zero_init_identity():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(BasicBlock(8, 8, preact=True, zero_init=True)(x), x)
    assert torch.equal(BasicBlock(8, 8, preact=False, zero_init=True)(x), torch.relu(x))


def test_basic_block_projection_when_shape_changes():
    block = BasicBlock(8, 16, stride=2)
    assert block(torch.randn(2, 8, 6, 6)).shape == (2, 16, 3, 3)
    assert isinstance(block.shortcut, nn.Sequential)
    assert isinstance(BasicBlock(8, 8).shortcut, nn.Identity)


def test_bottleneck_expands_channels():
    assert Bottleneck(64, 16, stride=2)(torch.randn(1, 64, 8, 8)).shape == (1, 64, 4, 4)


def test_dense_block_and_transition():
    x = torch.randn(4, 3, 8, 8)
    y = DenseBlock(2, 3, 10)(x)
    assert y.shape == (4, 23, 8, 8)
    torch.testing.assert_close(y[:, :3], x)  # the input is kept, concatenated
    assert transition_block(23, 10)(y).shape == (4, 10, 4, 4)


def test_se_block_gates_channels_and_params():
    block = SEBlock(32, r=4)
    x = torch.randn(2, 32, 5, 5)
    y = block(x)
    assert y.shape == x.shape
    gate = y / x
    torch.testing.assert_close(gate, gate[..., :1, :1].expand_as(gate))  # one gate per channel
    assert count_params(block) == 32 * 8 + 8 + 8 * 32 + 32


def test_fpn_top_down_shapes_and_sum():
    fpn = FPNTopDown([8, 16], 4)
    feats = [torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)]
    p0, p1 = fpn(feats)
    assert p0.shape == (1, 4, 8, 8) and p1.shape == (1, 4, 4, 4)
    up = p1.repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(p0, fpn.lateral[0](feats[0]) + up)


def test_resnet_small_any_input_size():
    model = ResNetSmall(widths=(4, 8), blocks=(1, 1))
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model(torch.randn(2, 1, 17, 23)).shape == (2, 10)


def test_global_pool_matches_torch():
    x = torch.randn(3, 4, 5, 6)
    torch.testing.assert_close(global_pool(x), nn.AdaptiveAvgPool2d(1)(x).flatten(1))
    torch.testing.assert_close(global_pool(x, "max"), nn.AdaptiveMaxPool2d(1)(x).flatten(1))
    hot = torch.zeros(1, 1, 4, 4)
    hot[..., 1, 2] = 1.0
    assert global_pool(hot).item() == pytest.approx(1 / 16)
    assert global_pool(hot, "max").item() == 1.0


def test_global_pool_mask_equals_unpadded():
    a, b = -torch.rand(1, 2, 5) - 0.1, -torch.rand(1, 2, 3) - 0.1
    batch = torch.zeros(2, 2, 5)
    batch[0], batch[1, :, :3] = a[0], b[0]
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    for mode in ("avg", "max"):
        pooled = global_pool(batch, mode, mask)
        torch.testing.assert_close(pooled[1:], global_pool(b, mode))
        assert not torch.allclose(global_pool(batch, mode)[1:], global_pool(b, mode))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="mode"):
        global_pool(torch.randn(1, 2, 3), "sum")
    with pytest.raises(ValueError, match="mask"):
        global_pool(torch.randn(1, 2, 3), mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="x"):
        global_pool(torch.randn(2, 3))
    with pytest.raises(ValueError, match="depth"):
        build_resnet(20)
    with pytest.raises(ValueError, match="cfg"):
        build_vgg("15")
    with pytest.raises(ValueError, match="num_convs"):
        vgg_block(0, 3, 8)
    with pytest.raises(TypeError, match="c2"):
        Inception(8, 4, 4, (2, 4), 4)
    with pytest.raises(ValueError, match="x"):
        BasicBlock(8, 8)(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="features"):
        FPNTopDown([8, 16], 4)([torch.randn(1, 8, 4, 4)])
    with pytest.raises(TypeError, match="cls"):
        count_modules(nn.Linear(2, 2), "Conv2d")


@pytest.mark.parametrize(
    ("exercise_id", "wrong"),
    [
        ("ex-cnn-inception", {"channels": 224, "params": 163_696}),
        ("ex-cnn-resnet50", {"convs": 49, "params": 25_557_032}),
        ("ex-cnn-alexnet", {"size": 54, "fc6_in": 9216}),
        ("ex-cnn-preact", lambda c_in, c_out, stride=1: BasicBlock(c_in, c_out, stride)),
    ],
)
def test_wrong_answers_are_rejected(exercise_id, wrong):
    with pytest.raises(WrongAnswerError):
        check(exercise_id, wrong)
