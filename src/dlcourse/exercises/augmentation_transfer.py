"""Exercise checks for chapter 3.4, Data augmentation and transfer learning."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_equal,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "03-vision/04-augmentation-and-transfer"

# ---------------------------------------------------------------------------------------------
# 1. adjust_contrast


def _contrast_reference():
    from dlcourse.augment import adjust_contrast

    return adjust_contrast


def _images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# (images, factor)
_CONTRAST_CASES = [
    ("f = 1 on a gray batch", (_images((4, 1, 6, 6), 0), 1.0)),
    ("f = 0 on a gray batch", (_images((4, 1, 6, 6), 1), 0.0)),
    ("f = 0.5 on RGB images", (_images((3, 3, 5, 7), 2), 0.5)),
    ("f = 2 (values clamp to [0, 1])", (_images((2, 3, 5, 5), 3), 2.0)),
    ("a batch of one with f = 1.5", (_images((1, 1, 8, 8), 4), 1.5)),
]


@exercise("ex-augment-contrast", CHAPTER, solution=_contrast_reference)
def _contrast(fn: Any) -> str:
    """``my_contrast(x, f)`` vs ``adjust_contrast`` on batches, with per-image means."""
    from dlcourse.augment import adjust_contrast

    def check_one(case: tuple[torch.Tensor, float]) -> None:
        x, f = case
        got = require_tensor(call_answer(fn, x, f), f"my_contrast(x, {f})")
        expected = adjust_contrast(x, f)
        if got.shape == x.shape and not torch.allclose(got, expected, atol=1e-5):
            batch_mean = ((x - x.mean()) * f + x.mean()).clamp(0, 1)
            if torch.allclose(got, batch_mean, atol=1e-5):
                raise WrongAnswerError(
                    "you used the mean of the whole batch; each image needs its own mean "
                    "(mean over dims (1, 2, 3) with keepdim=True)"
                )
            if (got < 0).any() or (got > 1).any():
                raise WrongAnswerError("values leave [0, 1]: clamp the result")
        check_close(got, expected, rtol=1e-5, atol=1e-5, name=f"my_contrast(x, {f})",
                    reveal=False)  # fmt: skip

    return f"{over_cases(_CONTRAST_CASES, check_one)} match adjust_contrast"


# ---------------------------------------------------------------------------------------------
# 2. trainable names after freezing


def _cnn(n_classes: int = 10) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 16, 3, padding=1), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(16, 32, 3, padding=1), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(), fc=nn.Linear(32 * 7 * 7, n_classes),
    ))  # fmt: skip


def _frozen_names_reference():
    from dlcourse.train import freeze, trainable_names

    def frozen_head_names() -> list[str]:
        model = _cnn()
        model.fc = nn.Linear(32 * 7 * 7, 3)
        freeze(model, trainable=lambda name: name.startswith("fc."))
        return trainable_names(model)

    return frozen_head_names


@exercise("ex-augment-frozen-names", CHAPTER, solution=_frozen_names_reference)
def _frozen_names(fn: Any) -> None:
    """``frozen_head_names()`` must return exactly the new head's parameter names."""
    names = call_answer(fn)
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise WrongAnswerError("frozen_head_names() should return a list of parameter names")
    if not names:
        raise WrongAnswerError(
            "nothing is trainable: did you freeze after installing the new head, or set "
            "model.fc.requires_grad = True (a plain attribute, not the parameters' flag)?"
        )
    extra = [n for n in names if not n.startswith("fc.")]
    if extra:
        raise WrongAnswerError(f"backbone parameters are still trainable: {extra}")
    check_equal(list(names), ["fc.weight", "fc.bias"], name="trainable names", reveal=False)


# ---------------------------------------------------------------------------------------------
# 3. learning-rate groups


def _lr_groups_reference():
    from dlcourse.train import lr_groups

    return lr_groups


def _group_models() -> list[tuple[str, tuple[nn.Module, str]]]:
    torch.manual_seed(0)
    plain = _cnn()
    partly_frozen = _cnn(5)
    partly_frozen.conv1.requires_grad_(False)
    two_heads = nn.Sequential(OrderedDict(
        body=nn.Linear(4, 8), head=nn.Sequential(nn.ReLU(), nn.Linear(8, 2)),
    ))  # fmt: skip
    return [
        ("the small CNN, head 'fc.'", (plain, "fc.")),
        ("conv1 frozen", (partly_frozen, "fc.")),
        ("a nested head 'head.'", (two_heads, "head.")),
    ]


@exercise("ex-augment-lr-groups", CHAPTER, solution=_lr_groups_reference)
def _lr_groups(fn: Any) -> str:
    """Two groups: head first at ``head_lr``, the other trainable parameters at ``backbone_lr``."""

    def check_one(case: tuple[nn.Module, str]) -> None:
        model, prefix = case
        groups = call_answer(fn, model, prefix, 1e-3, 1e-5)
        if not isinstance(groups, list | tuple) or len(groups) != 2:
            raise WrongAnswerError("return a list of exactly two dicts")
        if not all(isinstance(g, dict) and {"params", "lr"} <= set(g) for g in groups):
            raise WrongAnswerError('each group must be a dict with keys "params" and "lr"')
        check_equal([g["lr"] for g in groups], [1e-3, 1e-5], name="learning rates", reveal=False)
        seen = [id(p) for g in groups for p in g["params"]]
        if len(seen) != len(set(seen)):
            raise WrongAnswerError("a parameter appears in both groups")
        named = dict(model.named_parameters())
        trainable = {id(p) for p in named.values() if p.requires_grad}
        if set(seen) != trainable:
            frozen = {id(p) for p in named.values() if not p.requires_grad}
            if set(seen) & frozen:
                raise WrongAnswerError("frozen parameters (requires_grad=False) were included")
            raise WrongAnswerError("some trainable parameters are in no group")
        head = {id(p) for n, p in named.items() if n.startswith(prefix) and p.requires_grad}
        if {id(p) for p in groups[0]["params"]} != head:
            raise WrongAnswerError(f"the first group must hold the parameters named {prefix}*")

    return f"{over_cases(_group_models(), check_one)} give the right two groups"


# ---------------------------------------------------------------------------------------------
# 4. parameters of the linear probe on block-11 features


def _block_width(depth: int = 11) -> int:
    from dlcourse.vision import efficientnet_lite0

    return efficientnet_lite0(pretrained=False)._blocks[depth]._project_conv.out_channels


def _probe_params_reference() -> int:
    from dlcourse.train import count_params

    return count_params(nn.Linear(_block_width(), 10))


@exercise("ex-augment-probe-params", CHAPTER, solution=_probe_params_reference)
def _probe_params(answer: Any) -> None:
    """Weights ``10 D`` plus biases ``10`` for the width ``D`` of block 11's output."""
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    if not isinstance(answer, int):
        raise WrongAnswerError(f"probe_params should be an int, got {type(answer).__name__}")
    width = _block_width()
    if answer == 10 * width:
        raise WrongAnswerError("you counted the weights; the 10 biases are trainable too")
    check_equal(answer, 10 * width + 10, name="probe_params", reveal=False)
