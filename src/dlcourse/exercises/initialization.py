"""Exercise checks for chapter 1.6, Initialization, symmetry and building models."""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "01-foundations/06-initialization-and-modules"


# ---------------------------------------------------------------------------------------------
# 1. The rank of a constant-initialized hidden layer after training


def _symmetric_hidden_rank() -> int:
    """A 64-32-10 MLP with weights 0.05 and biases 0, 100 Adam steps on digits: rank of W1."""
    from torch import nn

    from dlcourse.data import digits
    from dlcourse.nn import init_module

    x, y, _, _ = digits()
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    init_module(model, "constant", value=0.05)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        idx = torch.randint(0, len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return int(torch.linalg.matrix_rank(model[0].weight.detach()))


@exercise("ex-init-symmetry", CHAPTER, solution=_symmetric_hidden_rank)
def _symmetry(rank: Any) -> None:
    """``rank``: the rank of the (32, 64) hidden weight after 100 Adam steps from a constant."""
    if torch.is_tensor(rank) and rank.numel() == 1:
        rank = rank.item()
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise WrongAnswerError(
            f"rank should be an int (torch.linalg.matrix_rank(W).item()), got {type(rank).__name__}"
        )
    if rank == 0:
        raise WrongAnswerError(
            "rank 0 means the hidden weights are all zero: with a zero constant no gradient "
            "reaches them (ReLU(0) = 0 and the output weights are 0). Use a nonzero constant."
        )
    if rank > 1:
        raise WrongAnswerError(
            f"rank {rank}: the rows differ, so something broke the symmetry. Was every weight "
            "set to the same constant and every bias to 0 (no random init, no dropout)? Adam "
            "rescales each entry by its own history, but identical rows have identical histories"
        )
    check_equal(rank, 1, name="rank", reveal=False)


# ---------------------------------------------------------------------------------------------
# 2. Three initialization numbers


def _init_numbers() -> tuple[float, float, float]:
    return (math.sqrt(2 / 256), math.sqrt(6 / (100 + 50)), 1 / math.sqrt(100))


@exercise("ex-init-numbers", CHAPTER, solution=_init_numbers)
def _numbers(answer: Any) -> None:
    """``answer = (He std for fan_in 256, Xavier uniform bound for (100, 50), default bound)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise WrongAnswerError("answer should hold three numbers: (he_std, xavier_bound, bound)")
    try:
        he_std, xavier_bound, default_bound = (float(a) for a in answer)
    except (TypeError, ValueError):
        raise WrongAnswerError("answer should hold three numbers (floats)") from None
    hints = {
        "he_std": (he_std, math.sqrt(2 / 256), {
            1 / 16: "that is 1/sqrt(fan_in), the LeCun std: ReLU zeroes half of the signal, "
                    "which the factor 2 in 2/fan_in makes up for",
            2 / 256: "that is a variance; the std is its square root",
        }),
        "xavier_bound": (xavier_bound, math.sqrt(6 / 150), {
            math.sqrt(2 / 150): "that is the Xavier std; the uniform bound a has a^2/3 = "
                                "sigma^2, so a = sqrt(3) sigma",
            math.sqrt(6 / 100): "the Xavier bound uses fan_in + fan_out, not fan_in alone",
        }),
        "default_bound": (default_bound, 1 / math.sqrt(100), {
            math.sqrt(6 / 100): "that is the Kaiming-uniform bound for ReLU; nn.Linear calls "
                                "kaiming_uniform_ with a = sqrt(5), whose gain shrinks it",
            1 / math.sqrt(50): "the default bound uses fan_in = in_features (100), not 50",
        }),
    }  # fmt: skip
    for name, (got, expected, wrong) in hints.items():
        for value, hint in wrong.items():
            if math.isclose(got, value, rel_tol=2e-3):
                raise WrongAnswerError(f"{name}: {hint}")
        check_close(got, expected, rtol=2e-3, atol=0.0, name=name, reveal=False)


# ---------------------------------------------------------------------------------------------
# 3. Counting parameters and lazy shapes


def _model_api_answer() -> tuple[int, tuple[int, int]]:
    from torch import nn

    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    n_params = sum(p.numel() for p in model.parameters())
    lazy = nn.LazyLinear(256)
    lazy(torch.rand(2, 20))
    return n_params, tuple(lazy.weight.shape)


@exercise("ex-init-model-api", CHAPTER, solution=_model_api_answer)
def _model_api(answer: Any) -> None:
    """``answer = (number of parameters, weight shape of LazyLinear(256) after a (2, 20) input)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("answer should be a pair: (n_params, weight_shape)")
    n_params, shape = answer
    if torch.is_tensor(n_params):
        n_params = n_params.item()
    expected_count, expected_shape = _model_api_answer()
    if n_params == 20 * 256 + 256 * 10:
        raise WrongAnswerError("n_params: the biases are parameters too (256 + 10 of them)")
    check_equal(n_params, expected_count, name="n_params", reveal=False)
    if not isinstance(shape, tuple | list | torch.Size):
        raise WrongAnswerError(f"weight_shape should be a tuple, got {type(shape).__name__}")
    shape = tuple(int(s) for s in shape)
    if shape == expected_shape[::-1]:
        raise WrongAnswerError(
            "weight_shape is transposed: nn.Linear stores W as (out_features, in_features)"
        )
    check_equal(shape, expected_shape, name="weight_shape", reveal=False)


# ---------------------------------------------------------------------------------------------
# 4. Saving safely: a state_dict round trip, and the lambda in nn.Sequential


def _roundtrip_reference(model: torch.nn.Module, fresh: torch.nn.Module, x: torch.Tensor) -> bool:
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    model.eval()
    fresh.eval()
    with torch.no_grad():
        return bool(torch.equal(model(x), fresh(x)))


def _save_solution() -> tuple[Any, str]:
    return _roundtrip_reference, "TypeError"


class _Shift(torch.nn.Module):
    """Adds a buffer; ``persistent=False`` keeps it out of the state_dict."""

    def __init__(self, width: int, persistent: bool, value: float):
        super().__init__()
        self.register_buffer("shift", torch.full((width,), value), persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


def _save_cases(seed: int, kind: str) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    from torch import nn

    def build(value: float) -> nn.Module:
        if kind == "mlp":
            return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        if kind == "batchnorm":
            return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
        return nn.Sequential(nn.Linear(6, 3), _Shift(3, persistent=False, value=value))

    with torch.random.fork_rng(devices=[]):  # seeded layers, global random state untouched
        torch.manual_seed(seed)
        model, fresh = build(1.0), build(-1.0)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(seed))
    if kind == "batchnorm":  # running statistics that differ from the defaults
        with torch.no_grad():
            model.train()(3 * x + 1)
    return model, fresh, x


@exercise("ex-init-save", CHAPTER, solution=_save_solution)
def _save(answer: Any) -> str:
    """``answer = (save_load_roundtrip, name of the exception raised by the lambda)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("answer should be a pair: (save_load_roundtrip, error_name)")
    roundtrip, error = answer
    if isinstance(error, type):
        error = error.__name__
    if not isinstance(error, str):
        raise WrongAnswerError("error_name should be the exception's class name, a string")
    if error != "TypeError":
        raise WrongAnswerError(
            f"error_name: {error!r} is not what nn.Sequential raises for a lambda; run the "
            "line inside try/except Exception as e and look at type(e).__name__"
        )

    def check_one(case: tuple[int, str, bool]) -> None:
        seed, kind, expected = case
        model, fresh, x = _save_cases(seed, kind)
        got = call_answer(roundtrip, model, fresh, x)
        if not isinstance(got, bool | torch.Tensor) or (torch.is_tensor(got) and got.numel() != 1):
            raise WrongAnswerError(f"save_load_roundtrip should return a bool, got {got!r}")
        if kind != "nonpersistent":
            for name, value in model.state_dict().items():
                if not torch.equal(fresh.state_dict()[name], value):
                    raise WrongAnswerError(
                        f"after the call, fresh[{name!r}] differs from the model's: load the "
                        "saved state_dict into fresh with fresh.load_state_dict(...)"
                    )
        if bool(got) != expected:
            why = (
                "a buffer registered with persistent=False is not in the state_dict, so fresh "
                "keeps its own value and the outputs differ"
                if kind == "nonpersistent"
                else "the loaded copy should compute the same outputs (compare in eval mode)"
            )
            raise WrongAnswerError(f"returned {bool(got)}, expected {expected}: {why}")

    cases = [
        ("an MLP", (0, "mlp", True)),
        ("BatchNorm running statistics (buffers)", (1, "batchnorm", True)),
        ("a non-persistent buffer, left out of the state_dict", (2, "nonpersistent", False)),
    ]
    return over_cases(cases, check_one)
