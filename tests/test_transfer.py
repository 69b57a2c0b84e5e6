"""Tests for the transfer-learning helpers of chapter 3.4 (vision.extract_features,
train.freeze / trainable_names / lr_groups) and the chapter's exercise checks."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from dlcourse.exercises import WrongAnswerError, check
from dlcourse.train import count_params, freeze, lr_groups, trainable_names
from dlcourse.vision import efficientnet_lite0, extract_features, imagenet_preprocess


def _net() -> nn.Sequential:
    return nn.Sequential(OrderedDict(body=nn.Linear(4, 8), act=nn.ReLU(), fc=nn.Linear(8, 3)))


@pytest.fixture(scope="module")
def lite0():
    return efficientnet_lite0(pretrained=False)


def test_extract_features_matches_pooled_extract_features(lite0):
    x = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    got = extract_features(lite0, x, size=32, batch_size=2)
    with torch.no_grad():
        expected = lite0.extract_features(imagenet_preprocess(x, 32)).mean(dim=(2, 3))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not got.requires_grad


def test_extract_features_depth_and_gray_input(lite0):
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = extract_features(lite0, x, size=32, depth=11)
    assert out.shape == (2, lite0._blocks[11]._project_conv.out_channels)
    torch.testing.assert_close(out, extract_features(lite0, x.expand(-1, 3, -1, -1), 32, 11))


def test_extract_features_rejects_bad_input(lite0):
    with pytest.raises(ValueError, match="x must be"):
        extract_features(lite0, torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="depth"):
        extract_features(lite0, torch.rand(1, 3, 8, 8), depth=16)


def test_module_attribute_does_not_unfreeze_but_freeze_does():
    model = _net()
    for p in model.parameters():
        p.requires_grad = False
    model.fc.requires_grad = True  # the note's bug: a plain attribute
    assert trainable_names(model) == []
    freeze(model, trainable=lambda name: name.startswith("fc."))
    assert trainable_names(model) == ["fc.weight", "fc.bias"]
    assert count_params(model, trainable_only=True) == 8 * 3 + 3
    freeze(model)
    assert trainable_names(model) == []


def test_lr_groups_split_trainable_parameters():
    model = _net()
    model.body.bias.requires_grad_(False)
    groups = lr_groups(model, "fc.", head_lr=1e-2, backbone_lr=1e-3)
    assert [g["lr"] for g in groups] == [1e-2, 1e-3]
    assert [id(p) for p in groups[0]["params"]] == [id(model.fc.weight), id(model.fc.bias)]
    assert [id(p) for p in groups[1]["params"]] == [id(model.body.weight)]
    opt = torch.optim.SGD(groups)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-3]


def test_transfer_helpers_reject_bad_input():
    with pytest.raises(TypeError, match="model"):
        freeze("not a model")
    with pytest.raises(TypeError, match="model"):
        trainable_names(3)
    with pytest.raises(ValueError, match="head_prefix"):
        lr_groups(_net(), "head.", 1e-3, 1e-4)
    with pytest.raises(ValueError, match="head_lr"):
        lr_groups(_net(), "fc.", -1.0, 1e-4)


# ---------------------------------------------------------------------------------------------
# Exercise checks: wrong answers get a teaching message


def test_contrast_check_catches_batch_mean_and_missing_clamp():
    def batch_mean(x, f):
        m = x.mean()
        return ((x - m) * f + m).clamp(0, 1)

    def no_clamp(x, f):
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - m) * f + m

    with pytest.raises(WrongAnswerError, match="whole batch"):
        check("ex-augment-contrast", batch_mean)
    with pytest.raises(WrongAnswerError, match="clamp"):
        check("ex-augment-contrast", no_clamp)


def test_frozen_names_check_catches_the_note_bug_and_unfrozen_backbone():
    with pytest.raises(WrongAnswerError, match="requires_grad = True"):
        check("ex-augment-frozen-names", lambda: [])
    with pytest.raises(WrongAnswerError, match="backbone"):
        check("ex-augment-frozen-names", lambda: ["conv1.weight", "fc.weight", "fc.bias"])


def test_lr_groups_check_catches_frozen_and_swapped_groups():
    def with_frozen(model, prefix, head_lr, backbone_lr):
        named = list(model.named_parameters())
        head = [p for n, p in named if n.startswith(prefix)]
        rest = [p for n, p in named if not n.startswith(prefix)]
        return [{"params": head, "lr": head_lr}, {"params": rest, "lr": backbone_lr}]

    def swapped(model, prefix, head_lr, backbone_lr):
        return [{"params": g["params"], "lr": head_lr if i else backbone_lr}
                for i, g in enumerate(lr_groups(model, prefix, head_lr, backbone_lr))]  # fmt: skip

    with pytest.raises(WrongAnswerError, match="frozen"):
        check("ex-augment-lr-groups", with_frozen)
    with pytest.raises(WrongAnswerError, match="learning rates"):
        check("ex-augment-lr-groups", swapped)


def test_probe_params_check_catches_missing_biases():
    with pytest.raises(WrongAnswerError, match="biases"):
        check("ex-augment-probe-params", 1920)
    with pytest.raises(WrongAnswerError):
        check("ex-augment-probe-params", 1931)
