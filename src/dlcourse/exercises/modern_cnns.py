"""Exercise checks for chapter 3.3, Modern CNN architectures."""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_equal, exercise, over_cases

CHAPTER = "03-vision/03-modern-cnns"


def _dict_answer(answer: Any, keys: tuple[str, ...]) -> dict:
    if not isinstance(answer, dict) or set(answer) != set(keys):
        raise WrongAnswerError(f"answer should be a dict with the keys {list(keys)}")
    for key in keys:
        if isinstance(answer[key], bool) or not isinstance(answer[key], int):
            raise WrongAnswerError(f"answer[{key!r}] should be an int")
    return answer


def _inception_reference() -> dict:
    from dlcourse.cnns import Inception
    from dlcourse.train import count_params

    block = Inception(192, 64, (96, 128), (16, 32), 32)
    return {"channels": block.out_channels, "params": count_params(block)}


@exercise("ex-cnn-inception", CHAPTER, solution=_inception_reference)
def _inception(answer: Any) -> None:
    answer = _dict_answer(answer, ("channels", "params"))
    expected = _inception_reference()
    if answer["channels"] != expected["channels"]:
        raise WrongAnswerError(
            "channels is wrong: the four branches are concatenated, so add the output channels "
            "of the 1x1 branch, of the 3x3 and 5x5 branches (their second numbers) and of the "
            "pool branch"
        )
    if answer["params"] != expected["params"]:
        raise WrongAnswerError(
            "params is wrong: count weights and biases of all six convolutions, "
            "c_out * (c_in * k * k + 1) each (the max-pool has none)"
        )


def _resnet50_reference() -> dict:
    from torch import nn

    from dlcourse.cnns import build_resnet
    from dlcourse.train import count_modules, count_params

    with torch.device("meta"):
        model = build_resnet(50)
    return {"convs": count_modules(model, nn.Conv2d), "params": count_params(model)}


@exercise("ex-cnn-resnet50", CHAPTER, solution=_resnet50_reference)
def _resnet50(answer: Any) -> None:
    answer = _dict_answer(answer, ("convs", "params"))
    expected = _resnet50_reference()
    if answer["convs"] == 49:
        raise WrongAnswerError(
            "49 counts only the main path (1 stem + 16 blocks x 3); the projection shortcuts "
            "are Conv2d modules too"
        )
    check_equal(answer["convs"], expected["convs"], name="convs", reveal=False)
    check_equal(answer["params"], expected["params"], name="params", reveal=False)


@exercise("ex-cnn-alexnet", CHAPTER, solution=lambda: {"size": 55, "fc6_in": 256 * 6 * 6})
def _alexnet(answer: Any) -> None:
    from dlcourse.conv import conv_output_size

    answer = _dict_answer(answer, ("size", "fc6_in"))
    size = conv_output_size(227, 11, stride=4)
    if answer["size"] != size:
        raise WrongAnswerError(
            "size is wrong: use floor((n + 2p - k) / s) + 1 with n = 227, k = 11, s = 4, p = 0"
        )
    if answer["fc6_in"] == 4096:
        raise WrongAnswerError("4096 is FC6's number of outputs; its input is the flattened map")
    check_equal(answer["fc6_in"], 256 * 6 * 6, name="fc6_in", reveal=False)


def _preact_reference():
    from dlcourse.cnns import BasicBlock

    return lambda c_in, c_out, stride=1: BasicBlock(c_in, c_out, stride, True, True)


@exercise("ex-cnn-preact", CHAPTER, solution=_preact_reference)
def _preact(make_block: Any) -> str:
    from torch import nn

    def check_one(case: tuple[int, int, int, int]) -> None:
        c_in, c_out, stride, seed = case
        block = call_answer(make_block, c_in, c_out, stride)
        if not isinstance(block, nn.Module):
            raise WrongAnswerError(f"make_block should return an nn.Module, got {type(block)}")
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(2, c_in, 8, 8, generator=gen) * 3
        y = call_answer(block, x)
        if not torch.is_tensor(y) or y.shape != (2, c_out, 8 // stride, 8 // stride):
            shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
            raise WrongAnswerError(
                f"output shape should be {(2, c_out, 8 // stride, 8 // stride)}, got {shape}"
            )
        if c_in == c_out and stride == 1 and not torch.equal(y, x):
            if torch.equal(y, torch.relu(x)):
                raise WrongAnswerError(
                    "the block returns ReLU(x): that is post-activation; in a pre-activation "
                    "block nothing follows the addition"
                )
            raise WrongAnswerError(
                "at initialization the block should return x exactly: zero the gamma of the "
                "last BatchNorm of the branch and use convolutions without bias"
            )
        with torch.no_grad():
            for p in block.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        if torch.equal(call_answer(block, x), x[:, :c_out, ::stride, ::stride]):
            raise WrongAnswerError("with random weights the branch should not be zero")

    cases = [
        ("8 -> 8 channels", (8, 8, 1, 0)),
        ("4 -> 4 channels, other seed", (4, 4, 1, 1)),
        ("8 -> 16 channels, stride 2 (projection)", (8, 16, 2, 2)),
    ]
    return over_cases(cases, check_one)
