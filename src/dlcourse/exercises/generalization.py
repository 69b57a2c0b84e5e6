"""Exercise checks for chapter 2.5, Generalization: bias, variance and noise.

The references come from the package (``dlcourse.train.samples_needed``,
``dlcourse.train.bias_variance_decomposition``, ``dlcourse.data.three_way_split``) or, for the
diagnosis, from the fixed scenarios below; messages never print a reference value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .core import WrongAnswerError, call_answer, check_equal, exercise, over_cases

CHAPTER = "02-training/05-generalization"


# ---------------------------------------------------------------------------------------------
# 1. Sample complexity of a finite hypothesis class


def _samples_needed_reference() -> int:
    from dlcourse.train import samples_needed

    return samples_needed(1e6, 0.05, 0.05)


def _samples_needed_solution() -> int:
    return math.ceil(math.log(2 * 10**6 / 0.05) / (2 * 0.05**2))


@exercise("ex-generalization-sample-complexity", CHAPTER, solution=_samples_needed_solution)
def _sample_complexity(n: Any) -> None:
    """``n``: the smallest N with 2 |H| exp(-2 N eps^2) <= delta for |H| = 1e6, eps = delta = 0.05."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int | np.integer) or isinstance(n, bool):
        raise WrongAnswerError(
            f"n should be a whole number of samples (an int), got {type(n).__name__}: round up "
            "with math.ceil"
        )
    expected = _samples_needed_reference()
    if n == expected - 1:
        raise WrongAnswerError(
            "one sample short: the bound must hold, so round the real-valued N *up* (math.ceil)"
        )
    if abs(n - math.ceil(math.log(10**6 / 0.05) / (2 * 0.05**2))) <= 1:
        raise WrongAnswerError(
            "the two-sided bound has a factor 2: solve 2|H| exp(-2 N eps^2) = delta"
        )
    if abs(n - math.ceil(math.log(2 * 10**6 / 0.05) / (0.05**2))) <= 1:
        raise WrongAnswerError("the exponent is -2 N eps^2: divide ln(2|H|/delta) by 2 eps^2")
    check_equal(int(n), expected, name="n", reveal=False)


# ---------------------------------------------------------------------------------------------
# 2. The bias-variance decomposition of a degree-3 polynomial fit

_DECOMPOSITION_KEYS = ("bias2", "variance", "noise", "mse")


def _decomposition_reference() -> dict[str, float]:
    """Degree-3 least squares on 30 points of sin(2 pi x) + N(0, 0.3^2), 300 resamples."""
    import torch

    from dlcourse.data import make_sine_regression
    from dlcourse.train import bias_variance_decomposition

    def fit_predict(x, y, x_test):
        powers = torch.arange(4, dtype=torch.float64)
        features = (2 * x.double() - 1).unsqueeze(1) ** powers
        w = torch.linalg.lstsq(features, y.double().unsqueeze(1)).solution
        return ((2 * x_test.double() - 1).unsqueeze(1) ** powers @ w).squeeze(1)

    return bias_variance_decomposition(
        fit_predict,
        lambda x: torch.sin(2 * torch.pi * x),
        lambda seed: make_sine_regression(30, noise=0.3, seed=seed, dtype=torch.float64),
        torch.linspace(0, 1, 200, dtype=torch.float64),
        noise_std=0.3,
        n_repeats=300,
    )


@exercise("ex-generalization-decomposition", CHAPTER, solution=_decomposition_reference)
def _decomposition(answer: Any) -> str:
    """A dict with the keys bias2, variance, noise and mse for degree 3, n = 30, sigma = 0.3."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(
            f"answer should be a dict with keys {list(_DECOMPOSITION_KEYS)}, got "
            f"{type(answer).__name__}"
        )
    missing = [k for k in _DECOMPOSITION_KEYS if k not in answer]
    if missing:
        raise WrongAnswerError(f"answer lacks the keys {missing}")
    try:
        values = {k: float(answer[k]) for k in _DECOMPOSITION_KEYS}
    except (TypeError, ValueError):
        raise WrongAnswerError("every value of answer should be a number (use .item())") from None
    if not all(math.isfinite(v) and v >= 0 for v in values.values()):
        raise WrongAnswerError("all four terms are averages of squares: finite and >= 0")
    if math.isclose(values["noise"], 0.3, rel_tol=1e-6):
        raise WrongAnswerError("noise is the noise *variance* sigma^2, not sigma")
    if not math.isclose(values["noise"], 0.09, rel_tol=1e-6):
        raise WrongAnswerError("noise should be the variance of eps, sigma^2 with sigma = 0.3")
    total = values["bias2"] + values["variance"] + values["noise"]
    if abs(total - values["mse"]) / values["mse"] > 0.03:
        raise WrongAnswerError(
            "bias2 + variance + noise is more than 3% away from mse. Square the bias *after* "
            "averaging the predictions over resamples, average the variance over x, and measure "
            "mse on fresh noisy labels"
        )
    if values["bias2"] >= 0.02:
        raise WrongAnswerError(
            "bias2 is too large for a cubic: is the fit really of degree 3 (four coefficients), "
            "and is the bias the mean prediction minus the noise-free sin(2 pi x)?"
        )
    if not 0.008 <= values["variance"] <= 0.04:
        raise WrongAnswerError(
            "variance is off: take the variance over resamples of the prediction at each x "
            "(not its standard deviation), then average it over x"
        )
    return f"bias2 + variance + noise within {abs(total / values['mse'] - 1):.1%} of mse"


# ---------------------------------------------------------------------------------------------
# 3. Diagnosis: bias, variance, optimization or noise

# (train loss, validation loss, training loss of a shallower model, noise floor)
DIAGNOSIS_SCENARIOS = {
    "A": (0.02, 0.95, 0.30, 0.01),
    "B": (1.40, 1.45, 0.25, 0.01),
    "C": (0.85, 0.90, 1.10, 0.01),
    "D": (0.62, 0.66, 0.70, 0.60),
}
_DIAGNOSES = {"A": "variance", "B": "optimization", "C": "bias", "D": "noise"}
_HINTS = {
    "A": "training loss sits at the floor; compare validation with training",
    "B": "compare its training loss with the shallower model's training loss",
    "C": "the gap is small but training loss is far above the floor, and depth helped",
    "D": "training and validation are both within a few hundredths of the floor",
}


@exercise("ex-generalization-diagnose", CHAPTER, solution=lambda: dict(_DIAGNOSES))
def _diagnose(answer: Any) -> None:
    """A dict scenario name -> "bias", "variance", "optimization" or "noise"."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(f"answer should be a dict like {{'A': ...}}, got {type(answer)}")
    allowed = {"bias", "variance", "optimization", "noise"}
    bad = sorted(str(v) for v in answer.values() if v not in allowed)
    if bad:
        raise WrongAnswerError(f"each value must be one of {sorted(allowed)}; got {bad}")
    if set(answer) != set(_DIAGNOSES):
        check_equal(answer, _DIAGNOSES, name="answer", reveal=False)
    wrong = sorted(k for k in _DIAGNOSES if answer[k] != _DIAGNOSES[k])
    if wrong:
        hints = "; ".join(f"{k}: {_HINTS[k]}" for k in wrong)
        raise WrongAnswerError(f"scenario(s) {wrong} are misdiagnosed. Hints: {hints}")


# ---------------------------------------------------------------------------------------------
# 4. A train / validation / test split


def _split_solution():
    from dlcourse.data import three_way_split

    return three_way_split


def _as_index_array(part: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(part.cpu() if hasattr(part, "cpu") else part)
    except (TypeError, ValueError):
        raise WrongAnswerError(f"the {name} split should be an array of indices") from None
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise WrongAnswerError(
            f"the {name} split should be a 1-D array of integer indices, got shape "
            f"{array.shape} and dtype {array.dtype}"
        )
    return array.astype(np.int64)


@exercise("ex-generalization-splits", CHAPTER, solution=_split_solution)
def _splits(split_fn: Any) -> str:
    """``split_fn(n, fractions, seed) -> (train, val, test)`` index arrays."""

    def check_one(case: tuple[int, tuple[float, float, float], int]) -> None:
        n, fractions, seed = case
        result = call_answer(split_fn, n, fractions, seed)
        if not isinstance(result, tuple | list) or len(result) != 3:
            raise WrongAnswerError("the function should return three index arrays")
        names = ("train", "val", "test")
        parts = [_as_index_array(p, name) for p, name in zip(result, names, strict=True)]
        joined = np.concatenate(parts)
        if len(np.unique(joined)) != len(joined):
            raise WrongAnswerError("the splits overlap: an index appears twice")
        if len(joined) != n or not np.array_equal(np.sort(joined), np.arange(n)):
            raise WrongAnswerError(f"together the splits must cover exactly range({n})")
        for part, fraction, name in zip(parts, fractions, names, strict=True):
            if abs(len(part) - fraction * n) > 1 + 1e-9:
                raise WrongAnswerError(
                    f"the {name} split has {len(part)} indices, more than one away from "
                    f"{fraction} * {n}"
                )
        again = call_answer(split_fn, n, fractions, seed)
        again = [_as_index_array(p, name) for p, name in zip(again, names, strict=True)]
        if not all(np.array_equal(a, b) for a, b in zip(again, parts, strict=True)):
            raise WrongAnswerError("the same seed must give the same split")
        if n >= 100 and np.array_equal(np.sort(parts[0]), np.arange(len(parts[0]))):
            raise WrongAnswerError(
                "the training split is the first indices in order: shuffle (seeded) first, or a "
                "sorted dataset puts whole classes into one split"
            )

    cases = [
        ("n = 1797, 60/20/20", (1797, (0.6, 0.2, 0.2), 0)),
        ("n = 1797, another seed", (1797, (0.6, 0.2, 0.2), 1)),
        ("n = 1000, 80/10/10", (1000, (0.8, 0.1, 0.1), 3)),
        ("n = 7, 60/20/20", (7, (0.6, 0.2, 0.2), 0)),
        ("n = 1", (1, (0.6, 0.2, 0.2), 0)),
    ]
    return over_cases(cases, check_one)
