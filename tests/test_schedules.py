"""Tests for the learning-rate schedules of chapter 2.4 (dlcourse.optim, lr_sweep, plot)."""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from dlcourse.exercises import check  # noqa: E402
from dlcourse.exercises.core import NotDoneError, WrongAnswerError  # noqa: E402
from dlcourse.optim import (  # noqa: E402
    as_lambda_lr,
    cosine_lr,
    exponential_lr,
    factor_lr,
    piecewise_constant_lr,
    polynomial_lr,
    step_decay_lr,
    transformer_lr,
)


def _torch_rates(make_scheduler, steps: int, lr: float) -> list[float]:
    """The rate a torch scheduler gives at t = 0, ..., steps - 1 (one optimizer step each)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(opt)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
    return rates


def _close(mine: list[float], theirs: list[float]) -> None:
    torch.testing.assert_close(
        torch.tensor(mine, dtype=torch.float64),
        torch.tensor(theirs, dtype=torch.float64),
        rtol=1e-9,
        atol=1e-12,
    )


def test_piecewise_constant_matches_multisteplr():
    theirs = _torch_rates(lambda o: lr_scheduler.MultiStepLR(o, [15, 30], gamma=0.5), 45, 0.5)
    mine = [piecewise_constant_lr(t, [15, 30], [0.5, 0.25, 0.125]) for t in range(45)]
    _close(mine, theirs)
    assert (mine[14], mine[15], mine[30]) == (0.5, 0.25, 0.125)


def test_step_decay_matches_multisteplr_and_steplr():
    multi = _torch_rates(lambda o: lr_scheduler.MultiStepLR(o, [20, 35], gamma=0.1), 50, 0.1)
    _close([step_decay_lr(t, 0.1, (20, 35), 0.1) for t in range(50)], multi)
    step = _torch_rates(lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.3), 30, 0.2)
    _close([step_decay_lr(t, 0.2, (7, 14, 21, 28), 0.3) for t in range(30)], step)


def test_step_decay_resnet110_warmup():
    assert step_decay_lr(0, warmup_lr=0.01, warmup_iters=400) == 0.01
    assert step_decay_lr(399, warmup_lr=0.01, warmup_iters=400) == 0.01
    assert step_decay_lr(400, warmup_lr=0.01, warmup_iters=400) == 0.1
    assert math.isclose(step_decay_lr(32_000), 0.01)
    assert math.isclose(step_decay_lr(63_999), 0.001)


def test_exponential_matches_exponentiallr():
    gamma = 0.9
    theirs = _torch_rates(lambda o: lr_scheduler.ExponentialLR(o, gamma=gamma), 40, 0.3)
    _close([exponential_lr(t, 0.3, -math.log(gamma)) for t in range(40)], theirs)


def test_factor_is_exponentiallr_shifted_by_one_with_floor():
    theirs = _torch_rates(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), 61, 2.0)
    mine = [factor_lr(t, 2.0, 0.9, 0.01) for t in range(60)]
    _close(mine, [max(0.01, r) for r in theirs[1:]])
    assert mine[0] == pytest.approx(1.8)
    assert mine[49] == pytest.approx(0.010308, abs=1e-6)
    assert mine[50] == 0.01
    assert factor_lr(5, 2.0, 0.9, 0.01) == factor_lr(5, 2.0, 0.9, 0.01)  # stateless


def test_cosine_matches_cosineannealinglr():
    theirs = _torch_rates(
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.01), 21, 0.3
    )
    mine = [cosine_lr(t, 20, 0.3, 0.01) for t in range(21)]
    torch.testing.assert_close(torch.tensor(mine), torch.tensor(theirs), rtol=1e-6, atol=1e-8)
    assert cosine_lr(10, 20, 0.3, 0.01) == pytest.approx(0.155)
    assert cosine_lr(25, 20, 0.3, 0.01) == 0.01  # after T it stays at the floor


def test_warmup_cosine_matches_sequentiallr():
    def make(o):
        warm = lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5)
        cos = lr_scheduler.CosineAnnealingLR(o, T_max=15, eta_min=0.01)
        return lr_scheduler.SequentialLR(o, [warm, cos], milestones=[5])

    theirs = _torch_rates(make, 21, 0.3)
    mine = [cosine_lr(t, 20, 0.3, 0.01, warmup_steps=5, warmup_begin_lr=0.03) for t in range(21)]
    torch.testing.assert_close(torch.tensor(mine), torch.tensor(theirs), rtol=1e-6, atol=1e-8)


def test_warmup_cosine_hand_values():
    rates = [cosine_lr(t, 20, 0.3, 0.01, warmup_steps=5) for t in range(21)]
    torch.testing.assert_close(
        torch.tensor(rates[:6]), torch.tensor([0.0, 0.06, 0.12, 0.18, 0.24, 0.3])
    )
    assert rates[6] == pytest.approx(0.29683, abs=1e-5)
    assert rates[20] == pytest.approx(0.01)


def test_transformer_values_and_peak():
    assert transformer_lr(1) == pytest.approx(1.747e-7, rel=1e-3)
    assert transformer_lr(4000) == pytest.approx(6.988e-4, rel=1e-3)
    assert transformer_lr(100_000) == pytest.approx(1.398e-4, rel=1e-3)
    rates = [transformer_lr(s) for s in range(1, 20_001)]
    assert max(range(len(rates)), key=rates.__getitem__) + 1 == 4000


def test_polynomial_hand_values():
    assert polynomial_lr(0, 0.1) == pytest.approx(0.1)
    assert polynomial_lr(3, 0.1) == pytest.approx(0.05)  # (1 + 3)^(-1/2)
    assert polynomial_lr(4, 0.2, c=0.5, power=1.0) == pytest.approx(0.2 / 3)


@pytest.mark.parametrize(
    "schedule",
    [
        lambda t: piecewise_constant_lr(t, [3, 8], [0.4, 0.1, 0.02]),
        lambda t: factor_lr(t, 0.4, 0.8, 0.05),
        lambda t: polynomial_lr(t, 0.4),
        lambda t: cosine_lr(t, 12, 0.4, 0.02, 3, 0.04),
        lambda t: transformer_lr(t + 1, d_model=64, warmup_steps=4),
    ],
)
def test_as_lambda_lr_follows_the_schedule(schedule):
    theirs = _torch_rates(lambda o: as_lambda_lr(o, schedule), 15, 0.4)
    _close([schedule(t) for t in range(15)], theirs)


def test_as_lambda_lr_two_groups():
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}], lr=0.1)
    scheduler = as_lambda_lr(opt, lambda t: 0.5 / (t + 1))
    opt.step()
    scheduler.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.25, 0.25])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="step"):
        transformer_lr(0)
    with pytest.raises(ValueError, match="values"):
        piecewise_constant_lr(1, [2, 4], [0.1, 0.2])
    with pytest.raises(ValueError, match="boundaries"):
        piecewise_constant_lr(1, [4, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="max_update"):
        cosine_lr(0, max_update=5, base_lr=0.1, warmup_steps=5)
    with pytest.raises(ValueError, match="factor"):
        factor_lr(0, 1.0, 1.5)
    with pytest.raises(ValueError, match="t must"):
        exponential_lr(-1, 0.1, 0.1)
    with pytest.raises(ValueError, match="milestones"):
        step_decay_lr(0, milestones=(5, 5))
    with pytest.raises(TypeError, match="optimizer"):
        as_lambda_lr("sgd", lambda t: 0.1)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        as_lambda_lr(opt, lambda t: 0.1)


def test_lr_sweep_reports_divergence_as_inf():
    from dlcourse.train import lr_sweep

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = (x[:, 0] > 0).long()

    def make_model():
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))

    result = lr_sweep(
        make_model,
        lambda p, lr: torch.optim.SGD(p, lr=lr),
        [0.1, 1e20],
        (x, y),
        (x, y),
        epochs=2,
    )
    assert math.isfinite(result[0.1]) and result[1e20] == math.inf
    again = lr_sweep(
        make_model, lambda p, lr: torch.optim.SGD(p, lr=lr), [0.1],
        (x, y), (x, y), epochs=2,
    )  # fmt: skip
    assert again[0.1] == result[0.1]  # same seed, same result
    with pytest.raises(ValueError, match="lrs"):
        lr_sweep(lambda: torch.nn.Linear(4, 2), None, [], (x, y), (x, y))


def test_plot_schedules_draws_one_line_per_schedule():
    from dlcourse.plot import plot_schedules

    ax = plot_schedules({"a": lambda t: 0.1, "b": lambda t: 0.1 * 0.9**t}, T=10, logy=True)
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="T"):
        plot_schedules({"a": lambda t: 0.1}, T=0)


# ---------------------------------------------------------------------------------------------
# Wrong answers to the chapter's exercises


def _wrong(exercise_id, answer):
    with pytest.raises(WrongAnswerError):
        check(exercise_id, answer)


def test_cosine_exercise_rejects_stateful_or_off_by_one_answers():
    def no_clamp(t, max_update, base_lr, final_lr=0.0, warmup_steps=0, warmup_begin_lr=0.0):
        if t < warmup_steps:
            return warmup_begin_lr + (base_lr - warmup_begin_lr) * t / warmup_steps
        p = (t - warmup_steps) / (max_update - warmup_steps)
        return final_lr + (base_lr - final_lr) * (1 + math.cos(math.pi * p)) / 2

    def full_period(t, max_update, base_lr, final_lr=0.0, warmup_steps=0, warmup_begin_lr=0.0):
        if t < warmup_steps:
            return warmup_begin_lr + (base_lr - warmup_begin_lr) * t / warmup_steps
        p = min(t, max_update) / max_update  # forgets to subtract the warm-up
        return final_lr + (base_lr - final_lr) * (1 + math.cos(math.pi * p)) / 2

    _wrong("ex-sched-cosine", no_clamp)
    _wrong("ex-sched-cosine", full_period)


def test_transformer_exercise_rejects_zero_start():
    def from_zero(step, d_model=512, warmup_steps=4000):
        step = step + 1  # silently shifts the schedule
        return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)

    def no_raise(step, d_model=512, warmup_steps=4000):
        if step == 0:
            return 0.0
        return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)

    _wrong("ex-sched-transformer", from_zero)
    _wrong("ex-sched-transformer", no_raise)


def test_factor_exercise_rejects_stateful_index_and_function():
    def off_by_one(t, base_lr, factor, min_lr=0.0):
        return max(min_lr, base_lr * factor**t)

    _wrong("ex-sched-factor", (49, factor_lr))
    _wrong("ex-sched-factor", (50, off_by_one))
    with pytest.raises(NotDoneError):
        check("ex-sched-factor", ...)


def test_bookkeeping_exercise_rejects_one_step_per_epoch():
    _wrong("ex-sched-bookkeeping", (0.125, 0.25))
    _wrong("ex-sched-bookkeeping", (0.25, 0.125))
