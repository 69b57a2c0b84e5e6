"""Exercise checks for chapter 3.2, Pooling, receptive fields and LeNet."""

from __future__ import annotations

from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_equal,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "03-vision/02-pooling-and-lenet"

# ---------------------------------------------------------------------------------------------
# 1. Receptive field by the recursion

VGG16_CONV5_3 = ([(3, 1, 1)] * 2 + [(2, 2, 1)] + [(3, 1, 1)] * 2 + [(2, 2, 1)]
                 + ([(3, 1, 1)] * 3 + [(2, 2, 1)]) * 2)[:-1]  # fmt: skip
E2_STACK = [(3, 1, 1), (3, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)]

_RF_CASES = [
    ("a single 3x3 layer", [(3, 1, 1)]),
    ("three 3x3 layers", [(3, 1, 1)] * 3),
    ("the chapter's stack with a stride-2 conv and an average pool", E2_STACK),
    ("dilations 1, 2, 4", [(3, 1, 1), (3, 1, 2), (3, 1, 4)]),
    ("a stride-2 layer last (its stride does not count)", [(3, 1, 1), (3, 2, 1)]),
    ("VGG-16 up to conv5_3", VGG16_CONV5_3),
    ("an empty stack (one pixel)", []),
]


def _empirical(layers: list[tuple[int, int, int]]) -> int:
    """Unit-weight conv stack measured with autograd."""
    from dlcourse.conv import empirical_receptive_field, unit_conv_stack

    net = unit_conv_stack(layers)
    return empirical_receptive_field(net, (1, 48, 48), torch.Generator().manual_seed(0))


def _rf_reference():
    from dlcourse.conv import receptive_field

    return receptive_field


@exercise("ex-pool-receptive-field", CHAPTER, solution=_rf_reference)
def _receptive_field(fn: Any) -> str:
    """The student's ``receptive_field(layers)`` vs the recursion and, for small stacks, autograd."""
    from dlcourse.conv import receptive_field

    def check_one(layers: list[tuple[int, int, int]]) -> None:
        got = call_answer(fn, [tuple(layer) for layer in layers])
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if not isinstance(got, int) or isinstance(got, bool):
            raise WrongAnswerError(f"return an int, got {type(got).__name__}")
        expected = receptive_field(layers)
        if got == expected:
            return
        no_dilation = receptive_field([(k, s, 1) for k, s, _ in layers])
        if got == no_dilation:
            raise WrongAnswerError("the dilation is missing: a dilated kernel spans (k - 1) d + 1")
        with_own = 1 + sum(
            (k - 1) * d * torch.tensor([s_ for _, s_, _ in layers[: i + 1]]).prod().item()
            for i, (k, _, d) in enumerate(layers)
        )
        if got == with_own:
            raise WrongAnswerError(
                "a layer's own stride was counted: multiply only the strides of the layers "
                "before it"
            )
        raise WrongAnswerError(f"got {got} for layers {layers}")

    note = over_cases(_RF_CASES, check_one)
    for layers in ([(3, 1, 1)] * 3, E2_STACK):
        check_equal(
            call_answer(fn, list(layers)), _empirical(layers), name="autograd's measurement"
        )
    return f"{note}, and the autograd measurement agrees"


# ---------------------------------------------------------------------------------------------
# 2. LeNet-5 shapes and parameters

LENET_KEYS = ("shapes", "params_f6_84", "params_f6_64")


def _lenet_measured() -> dict[str, Any]:
    from dlcourse.nn import LeNet5

    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    return {
        "shapes": LeNet5().shape_trace(),
        "params_f6_84": count(LeNet5(fc=(120, 84))),
        "params_f6_64": count(LeNet5(fc=(120, 64))),
    }


@exercise(
    "ex-pool-lenet-count",
    CHAPTER,
    solution=lambda: {"shapes": [32, 28, 14, 10, 5, 1], "params_f6_84": 61_706,
                      "params_f6_64": 59_086},
)  # fmt: skip
def _lenet_count(answer: Any) -> str:
    """A dict: the spatial sizes through LeNet-5, and its parameter counts with F6 = 84 and 64."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(f"answer should be a dict with keys {list(LENET_KEYS)}")
    check_equal(set(answer), set(LENET_KEYS), name="the keys of answer")
    expected = _lenet_measured()
    shapes = answer["shapes"]
    if not isinstance(shapes, list | tuple) or len(shapes) != 6:
        raise WrongAnswerError(
            "shapes should list 6 sizes: the input, then after C1, S2, C3, S4, C5"
        )
    check_equal(list(shapes), expected["shapes"], name="shapes", reveal=False)
    for key in ("params_f6_84", "params_f6_64"):
        value = answer[key]
        if value == expected[key]:
            continue
        units = 84 if key.endswith("84") else 64
        weights_only = expected[key] - (6 + 16 + 120 + units + 10)
        if value == weights_only:
            raise WrongAnswerError(f"{key}: the biases are missing (one per output channel/unit)")
        raise WrongAnswerError(f"{key} is wrong: got {value!r}")
    return "sizes and both parameter counts match the built network"


# ---------------------------------------------------------------------------------------------
# 3. Pooling output sizes with the default stride

POOL_CASES = ((28, 2), (14, 2), (7, 2), (10, 3), (32, 5))


def _pooled(n: int, k: int) -> int:
    with torch.no_grad():
        return torch.nn.MaxPool2d(k)(torch.zeros(1, 1, n, n)).shape[-1]


@exercise("ex-pool-output-sizes", CHAPTER, solution=lambda: [_pooled(n, k) for n, k in POOL_CASES])
def _output_sizes(answer: Any) -> str:
    """Five ints, compared with ``nn.MaxPool2d(k)(x).shape``."""
    if not isinstance(answer, list | tuple) or len(answer) != len(POOL_CASES):
        raise WrongAnswerError(f"answer should be a list of {len(POOL_CASES)} ints")
    for got, (n, k) in zip(answer, POOL_CASES, strict=True):
        expected = _pooled(n, k)
        if got == expected:
            continue
        if got == n - k + 1:
            hint = " That is stride 1: a pooling layer's stride defaults to its window size."
        elif got == -(-(n - k) // k) + 1:
            hint = " Round down: a window that would stick out past the border is dropped."
        else:
            hint = ""
        raise WrongAnswerError(f"n={n}, k={k}: got {got!r}.{hint}")
    return f"all {len(POOL_CASES)} sizes match nn.MaxPool2d"


# ---------------------------------------------------------------------------------------------
# 4. A dense layer that undoes a pixel permutation


def _permuted_reference(weight: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    return weight[:, perm]


@exercise("ex-pool-permuted-dense", CHAPTER, solution=lambda: _permuted_reference)
def _permuted_dense(fn: Any) -> str:
    """``permuted_weight(weight, perm)``: ``x[:, perm] @ W'.T == x @ W.T`` for every ``x``."""
    gen = torch.Generator().manual_seed(32)

    def check_one(case: tuple[int, int, int]) -> None:
        n, d_in, d_out = case
        weight = torch.randn(d_out, d_in, generator=gen)
        perm = torch.randperm(d_in, generator=gen)
        x = torch.randn(n, d_in, generator=gen)
        got = require_tensor(call_answer(fn, weight, perm), "permuted_weight(weight, perm)")
        if got.shape != weight.shape:
            raise WrongAnswerError(
                f"the new weight should have the old one's shape {tuple(weight.shape)}, got "
                f"{tuple(got.shape)}"
            )
        inverse = torch.argsort(perm)
        if d_in > 2 and torch.allclose(got, weight[:, inverse]) and not torch.equal(perm, inverse):
            raise WrongAnswerError(
                "you applied the inverse permutation: column j of the new weight must meet "
                "the pixel that now sits at position j, which is pixel perm[j]"
            )
        check_close(x[:, perm] @ got.T, x @ weight.T, rtol=1e-5, atol=1e-5,
                    name="the outputs on permuted inputs", reveal=False)  # fmt: skip

    cases = [("64 pixels, 10 units", (5, 64, 10)), ("a batch of one", (1, 16, 3)),
             ("one output unit", (4, 9, 1))]  # fmt: skip
    return f"{over_cases(cases, check_one)}: the permuted network computes the same function"
