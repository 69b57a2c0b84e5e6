"""Chapter 2.5's kernels: splits, the sine task, the bias-variance simulation, Hoeffding bounds,
the train/validation plot, and the chapter's exercise checks on wrong answers."""

import math

import matplotlib

matplotlib.use("Agg")  # tests only; never export MPLBACKEND for the book build

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlcourse import plot  # noqa: E402
from dlcourse.data import make_sine_regression, three_way_split  # noqa: E402
from dlcourse.exercises import WrongAnswerError, check  # noqa: E402
from dlcourse.train import (  # noqa: E402
    bias_variance_decomposition,
    hoeffding_bound,
    samples_needed,
)

# --------------------------------------------------------------------------------------------
# data


@pytest.mark.parametrize("n", [1, 2, 7, 10, 1797])
def test_three_way_split_is_a_disjoint_cover(n):
    train, val, test = three_way_split(n)
    joined = np.concatenate([train, val, test])
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))
    assert len(train) == math.floor(0.6 * n) and len(val) == math.floor(0.2 * n)


def test_three_way_split_sizes_for_digits_and_seeding():
    train, val, test = three_way_split(1797)
    assert (len(train), len(val), len(test)) == (1078, 359, 360)
    np.testing.assert_array_equal(three_way_split(1797)[0], train)
    assert not np.array_equal(three_way_split(1797, seed=1)[0], train)
    assert not np.array_equal(np.sort(train), np.arange(len(train)))  # shuffled


def test_three_way_split_exact_fractions_do_not_lose_a_sample():
    # 0.29 * 100 is 28.999... in floating point; the split still gives 29 training indices
    assert 0.29 * 100 < 29
    assert [len(p) for p in three_way_split(100, (0.29, 0.01, 0.7))] == [29, 1, 70]


def test_three_way_split_checks_arguments():
    with pytest.raises(ValueError, match="fractions"):
        three_way_split(10, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="fractions"):
        three_way_split(10, (0.5, 0.5))
    with pytest.raises(ValueError, match="n must"):
        three_way_split(0)


def test_make_sine_regression_shapes_noise_and_seeding():
    x, y = make_sine_regression(20_000, noise=0.3, seed=4)
    assert x.shape == y.shape == (20_000,) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    residual = (y - torch.sin(2 * torch.pi * x)).double()
    assert abs(residual.var().item() - 0.09) < 0.005
    assert torch.equal(make_sine_regression(20, seed=4)[1], make_sine_regression(20, seed=4)[1])
    x64, y64 = make_sine_regression(5, noise=0.0, dtype=torch.float64)
    torch.testing.assert_close(y64, torch.sin(2 * torch.pi * x64))
    with pytest.raises(ValueError, match="noise"):
        make_sine_regression(5, noise=-1.0)
    with pytest.raises(TypeError, match="dtype"):
        make_sine_regression(5, dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# train: bias-variance and Hoeffding


def _sample(seed):
    return make_sine_regression(30, seed=seed, dtype=torch.float64)


def _poly_fit_predict(degree):
    def fit_predict(x, y, x_test):
        powers = torch.arange(degree + 1, dtype=torch.float64)
        w = torch.linalg.lstsq((2 * x - 1).unsqueeze(1) ** powers, y.unsqueeze(1)).solution
        return ((2 * x_test - 1).unsqueeze(1) ** powers @ w).squeeze(1)

    return fit_predict


X_TEST = torch.linspace(0, 1, 100, dtype=torch.float64)


def _sine(x):
    return torch.sin(2 * torch.pi * x)


@pytest.mark.parametrize("degree", [1, 3])
def test_bias_variance_terms_add_up_to_the_mse(degree):
    r = bias_variance_decomposition(_poly_fit_predict(degree), _sine, _sample, X_TEST, 0.3, 200)
    assert set(r) == {"bias2", "variance", "noise", "mse"}
    assert r["noise"] == pytest.approx(0.09)
    assert abs(r["bias2"] + r["variance"] + r["noise"] - r["mse"]) / r["mse"] < 0.03


def test_bias_variance_of_a_constant_predictor_is_pure_bias():
    def constant(x, y, x_test):
        return torch.full_like(x_test, 0.5)

    r = bias_variance_decomposition(constant, _sine, _sample, X_TEST, 0.0, n_repeats=5)
    assert r["variance"] == 0.0
    assert r["bias2"] == pytest.approx(((0.5 - _sine(X_TEST)) ** 2).mean().item())
    assert r["mse"] == pytest.approx(r["bias2"])


def test_bias_variance_is_seeded_and_checks_arguments():
    args = (_poly_fit_predict(1), _sine, _sample, X_TEST, 0.3, 20)
    assert bias_variance_decomposition(*args) == pytest.approx(bias_variance_decomposition(*args))
    with pytest.raises(ValueError, match="x_test"):
        bias_variance_decomposition(_poly_fit_predict(1), _sine, _sample, torch.zeros(0), 0.3)
    with pytest.raises(ValueError, match="n_repeats"):
        bias_variance_decomposition(_poly_fit_predict(1), _sine, _sample, X_TEST, 0.3, 1)
    with pytest.raises(ValueError, match="fit_predict"):
        bias_variance_decomposition(lambda x, y, t: t[:3], _sine, _sample, X_TEST, 0.3, 2)


def test_hoeffding_bound_values():
    assert hoeffding_bound(1000, 0.05) == pytest.approx(2 * math.exp(-5))  # 0.0135
    assert hoeffding_bound(1000, 0.05, h_size=1000) > 1  # vacuous
    assert hoeffding_bound(10_000, 0.05, h_size=10**6) == pytest.approx(3.857e-16, rel=1e-3)
    with pytest.raises(ValueError, match="eps"):
        hoeffding_bound(10, 0.0)
    with pytest.raises(ValueError, match="h_size"):
        hoeffding_bound(10, 0.1, h_size=0)
    with pytest.raises(ValueError, match="n must"):
        hoeffding_bound(0, 0.1)


def test_samples_needed_is_the_smallest_n_that_meets_delta():
    n = samples_needed(1e6, 0.05, 0.05)
    assert n == 3501
    assert hoeffding_bound(n, 0.05, 10**6) <= 0.05 < hoeffding_bound(n - 1, 0.05, 10**6)
    with pytest.raises(ValueError, match="delta"):
        samples_needed(10, 0.1, 1.5)


def test_hoeffding_bound_holds_for_one_fixed_hypothesis():
    """Coin-flip correctness: the frequency of a deviation above eps stays under the bound."""
    g = torch.Generator().manual_seed(0)
    n, eps = 100, 0.1
    errors = torch.randint(0, 2, (20_000, n), generator=g).float().mean(dim=1)
    frequency = ((errors - 0.5).abs() > eps).float().mean().item()
    assert frequency <= hoeffding_bound(n, eps)


# --------------------------------------------------------------------------------------------
# plot


def test_plot_train_val_curves_marks_the_validation_minimum():
    ax = plot.plot_train_val_curves([1, 2, 3], [3.0, 2.0, 1.0], [3.0, 1.5, 2.5], "degree")
    assert len(ax.lines) == 3 and ax.lines[2].get_xdata()[0] == 2
    ax = plot.plot_train_val_curves([1, 2], [1.0, 0.1], [1.0, 2.0], "width", logy=True)
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="train"):
        plot.plot_train_val_curves([1, 2], [1.0], [1.0, 2.0], "degree")
    plt.close("all")


# --------------------------------------------------------------------------------------------
# exercise checks on wrong answers


def test_sample_complexity_check_hints():
    with pytest.raises(WrongAnswerError, match="round"):
        check("ex-generalization-sample-complexity", 3500)
    with pytest.raises(WrongAnswerError, match="factor 2"):
        check("ex-generalization-sample-complexity", 3363)
    with pytest.raises(WrongAnswerError, match="int"):
        check("ex-generalization-sample-complexity", 3500.9)


def test_decomposition_check_rejects_inconsistent_terms():
    good = {"bias2": 0.005, "variance": 0.018, "noise": 0.09, "mse": 0.113}
    check("ex-generalization-decomposition", good)
    with pytest.raises(WrongAnswerError, match="variance"):
        check("ex-generalization-decomposition", {**good, "noise": 0.3})
    with pytest.raises(WrongAnswerError, match="3%"):
        check("ex-generalization-decomposition", {**good, "mse": 0.2})
    with pytest.raises(WrongAnswerError, match="degree 3"):
        check("ex-generalization-decomposition", {**good, "bias2": 0.2, "mse": 0.308})
    with pytest.raises(WrongAnswerError, match="standard deviation"):
        check("ex-generalization-decomposition", {**good, "variance": 0.13, "mse": 0.225})
    with pytest.raises(WrongAnswerError, match="keys"):
        check("ex-generalization-decomposition", {"bias2": 0.005})


def test_diagnose_check_names_the_wrong_scenarios():
    answer = {"A": "variance", "B": "bias", "C": "bias", "D": "bias"}
    with pytest.raises(WrongAnswerError, match=r"\['B', 'D'\].*shallower"):
        check("ex-generalization-diagnose", answer)
    with pytest.raises(WrongAnswerError, match="one of"):
        check("ex-generalization-diagnose", {**answer, "B": "overfitting"})


def test_split_check_rejects_overlap_unshuffled_and_unseeded_splits():
    def overlapping(n, fractions, seed):
        idx = np.random.default_rng(seed).permutation(n)
        return idx[: int(0.6 * n)], idx[: int(0.2 * n)], idx[int(0.6 * n) :]

    def unshuffled(n, fractions, seed):
        a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
        idx = np.arange(n)
        return idx[:a], idx[a:b], idx[b:]

    def unseeded(n, fractions, seed):
        idx = np.random.permutation(n)
        a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
        return idx[:a], idx[a:b], idx[b:]

    with pytest.raises(WrongAnswerError, match="overlap"):
        check("ex-generalization-splits", overlapping)
    with pytest.raises(WrongAnswerError, match="shuffle"):
        check("ex-generalization-splits", unshuffled)
    with pytest.raises(WrongAnswerError, match="same seed"):
        check("ex-generalization-splits", unseeded)
