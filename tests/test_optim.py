"""dlcourse.optim: scratch optimizers equal torch.optim step by step; surfaces and playgrounds."""

import functools
import math

import pytest
import torch

from dlcourse.exercises import WrongAnswerError, check
from dlcourse.optim import (
    ScratchOptimizer,
    adadelta_step_,
    adagrad_step_,
    adam_step_,
    make_quadratic,
    reddi_problem,
    rmsprop_step_,
    rosenbrock,
    run_optimizer,
    sgd_step_,
    train_2d,
    yogi_step_,
)


def _problem(dtype, seed=0):
    """Two parameter tensors and a smooth non-quadratic loss whose gradients change every step."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 3, generator=g, dtype=dtype)
    b = torch.randn(3, generator=g, dtype=dtype)
    x = torch.randn(16, 4, generator=g, dtype=dtype)
    y = torch.randn(16, 3, generator=g, dtype=dtype)

    def loss_fn(params):
        w_, b_ = params
        return ((torch.tanh(x @ w_ + b_) - y) ** 2).mean() + 0.1 * (w_**4).sum()

    return [w, b], loss_fn


def _trajectories(step_fn, torch_cls, hp, torch_hp, steps, dtype):
    params, loss_fn = _problem(dtype)
    mine = [p.clone().requires_grad_() for p in params]
    ref = [p.clone().requires_grad_() for p in params]
    opt = torch_cls(ref, **torch_hp)
    state: dict = {}
    worst = 0.0
    for _ in range(steps):
        for ps in (mine, ref):
            for p in ps:
                p.grad = None
            loss_fn(ps).backward()
        step_fn(mine, state, **hp)
        opt.step()
        for a, b in zip(mine, ref, strict=True):
            worst = max(worst, (a - b).abs().max().item())
    return mine, ref, worst


CASES = {
    "sgd": (sgd_step_, torch.optim.SGD, {"lr": 0.05}),
    "sgd-wd": (sgd_step_, torch.optim.SGD, {"lr": 0.05, "weight_decay": 0.1}),
    "momentum": (sgd_step_, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    "nesterov": (
        sgd_step_,
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ),
    "adagrad": (adagrad_step_, torch.optim.Adagrad, {"lr": 0.1}),
    "adagrad-wd": (adagrad_step_, torch.optim.Adagrad, {"lr": 0.1, "weight_decay": 0.1}),
    "rmsprop": (rmsprop_step_, torch.optim.RMSprop, {"lr": 0.01}),
    "rmsprop-options": (
        rmsprop_step_,
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.8, "centered": True, "weight_decay": 0.1},
    ),
    "adadelta": (adadelta_step_, torch.optim.Adadelta, {"lr": 1.0}),
    "adadelta-wd": (
        adadelta_step_,
        torch.optim.Adadelta,
        {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1},
    ),
    "adam": (adam_step_, torch.optim.Adam, {"lr": 0.01}),
    "adam-l2": (adam_step_, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
    "amsgrad": (adam_step_, torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.9), "amsgrad": True}),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scratch_optimizer_matches_torch_optim(name, dtype):
    step_fn, torch_cls, hp = CASES[name]
    steps = 100 if dtype == torch.float64 else 20
    mine, ref, worst = _trajectories(step_fn, torch_cls, hp, hp, steps, dtype)
    assert worst <= (1e-12 if dtype == torch.float64 else 1e-6), worst
    moved = sum((a - b).abs().sum().item() for a, b in zip(mine, _problem(dtype)[0], strict=True))
    assert moved > 1e-3  # the parameters really moved


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_is_decoupled_adam(dtype, weight_decay):
    hp = {"lr": 0.01, "weight_decay": weight_decay}
    steps = 100 if dtype == torch.float64 else 20
    _, _, worst = _trajectories(
        functools.partial(adam_step_, decoupled=True), torch.optim.AdamW, hp, hp, steps, dtype
    )
    assert worst <= (1e-12 if dtype == torch.float64 else 1e-6), worst


def test_eps_inside_sqrt_matches_the_d2l_formula():
    """AdaGrad and RMSProp with eps inside the root, step by step against the formula."""
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    state: dict = {}
    s = torch.zeros(2, dtype=torch.float64)
    expected = x.detach().clone()
    for _ in range(3):
        x.grad = 2 * x.detach()
        g = 2 * expected
        s = 0.9 * s + 0.1 * g**2
        expected = expected - 0.1 * g / torch.sqrt(s + 1e-6)
        rmsprop_step_([x], state, lr=0.1, alpha=0.9, eps=1e-6, eps_inside_sqrt=True)
    torch.testing.assert_close(x.detach(), expected, rtol=1e-14, atol=1e-14)


def test_adagrad_mean_mode_first_step_is_lr_times_sign():
    x = torch.tensor([3.0, -0.001, 50.0], dtype=torch.float64)
    x.grad = torch.tensor([1e-4, -7.0, 300.0], dtype=torch.float64)
    before = x.clone()
    adagrad_step_([x], {}, lr=0.5, eps=0.0, mode="mean")
    torch.testing.assert_close(x - before, -0.5 * torch.sign(x.grad))


def test_adagrad_mean_mode_keeps_its_rate_and_sum_mode_decays():
    """Constant gradient: the sum rule's step is lr / sqrt(t); the mean rule's stays lr."""
    for mode, expected in (("sum", 0.1 / math.sqrt(100)), ("mean", 0.1)):
        x = torch.zeros(1, dtype=torch.float64)
        x.grad = torch.ones(1, dtype=torch.float64)
        state: dict = {}
        for _ in range(99):
            adagrad_step_([x], state, lr=0.1, eps=0.0, mode=mode)
        before = x.clone()
        adagrad_step_([x], state, lr=0.1, eps=0.0, mode=mode)
        assert abs((before - x).item() - expected) < 1e-12, mode


def test_adam_without_bias_correction_and_first_step():
    x = torch.zeros(2, dtype=torch.float64)
    x.grad = torch.tensor([1e-6, -1e3], dtype=torch.float64)
    adam_step_([x], {}, lr=1e-3)
    torch.testing.assert_close(x, torch.tensor([-1e-3 / (1 + 1e-2), 1e-3], dtype=torch.float64))
    y = torch.zeros(1, dtype=torch.float64)
    y.grad = torch.ones(1, dtype=torch.float64)
    adam_step_([y], {}, lr=1e-3, eps=0.0, bias_correction=False)
    torch.testing.assert_close(y, torch.tensor([-1e-3 * 0.1 / math.sqrt(0.001)]).double())


def test_yogi_matches_a_hand_computed_step():
    """Two steps by hand; the second has g^2 < s, so s goes down by (1 - beta2) g^2."""
    b1, b2, lr, eps = 0.9, 0.99, 0.1, 1e-3
    x = torch.tensor([1.0], dtype=torch.float64)
    state: dict = {}
    x.grad = torch.tensor([2.0], dtype=torch.float64)
    yogi_step_([x], state, lr=lr, betas=(b1, b2), eps=eps)
    m1, s1 = 0.1 * 2.0, 0.01 * 4.0  # s_0 = 0 < g^2: s grows by 0.01 * 4
    x1 = 1.0 - lr * (m1 / 0.1) / (math.sqrt(s1 / 0.01) + eps)
    assert abs(x.item() - x1) < 1e-14
    x.grad = torch.tensor([0.1], dtype=torch.float64)
    yogi_step_([x], state, lr=lr, betas=(b1, b2), eps=eps)
    m2 = 0.9 * m1 + 0.1 * 0.1
    s2 = s1 - 0.01 * 0.01  # g^2 = 0.01 < s1 = 0.04
    x2 = x1 - lr * (m2 / (1 - b1**2)) / (math.sqrt(s2 / (1 - b2**2)) + eps)
    assert abs(state[0]["exp_avg_sq"].item() - s2) < 1e-15
    assert abs(x.item() - x2) < 1e-14


def test_yogi_moves_s_by_at_most_one_minus_beta2_g_squared():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(1000, dtype=torch.float64)
    state: dict = {}
    for _ in range(30):
        scale = 10.0 ** torch.randint(-3, 3, (1000,), generator=g).double()
        x.grad = torch.randn(1000, generator=g, dtype=torch.float64) * scale
        before = state[0]["exp_avg_sq"].clone() if state else torch.zeros_like(x)
        yogi_step_([x], state, betas=(0.9, 0.9))
        change = (state[0]["exp_avg_sq"] - before).abs()
        rounding = 1e-12 * before.abs().max()
        assert (change <= 0.1 * x.grad**2 * (1 + 1e-12) + rounding).all()


def test_yogi_first_step_equals_adam_first_step():
    x, y = torch.tensor([0.5, -2.0]), torch.tensor([0.5, -2.0])
    x.grad = y.grad = torch.tensor([3.0, -0.25])
    yogi_step_([x], {}, lr=0.01, eps=1e-8)
    adam_step_([y], {}, lr=0.01, eps=1e-8)
    torch.testing.assert_close(x, y)


def test_params_without_grad_are_skipped_and_keep_no_state():
    a, b = torch.ones(2), torch.ones(2)
    a.grad = torch.ones(2)
    state: dict = {}
    adam_step_([a, b], state, lr=0.1)
    assert torch.equal(b, torch.ones(2)) and 1 not in state and state[0]["step"] == 1


def test_scratch_optimizer_drives_a_model_like_torch():
    torch.manual_seed(0)
    model_a = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    model_b = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    model_b.load_state_dict(model_a.state_dict())
    opt_a = ScratchOptimizer(model_a.parameters(), adam_step_, lr=0.01, weight_decay=0.01)
    opt_b = torch.optim.Adam(model_b.parameters(), lr=0.01, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt_a, step_size=3, gamma=0.5)
    sched_b = torch.optim.lr_scheduler.StepLR(opt_b, step_size=3, gamma=0.5)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    for _ in range(10):
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
        sched.step()
        sched_b.step()
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)


def test_make_quadratic_value_gradient_and_hessian():
    f, grad, hessian = make_quadratic([1.0, 100.0], angle=0.3)
    torch.testing.assert_close(torch.linalg.eigvalsh(hessian), torch.tensor([1.0, 100.0]).double())
    x = torch.tensor([[0.7, -0.2], [1.0, 2.0]], dtype=torch.float32, requires_grad=True)
    f(x).sum().backward()
    torch.testing.assert_close(x.grad, grad(x.detach()))
    assert f(x).shape == (2,) and f(x).dtype == torch.float32
    ravine, _, _ = make_quadratic([1, 100])
    assert ravine(torch.tensor([-10.0, 1.0])).item() == pytest.approx(0.5 * (100 + 100))


def test_rosenbrock_minimum_and_value():
    assert rosenbrock(torch.tensor([1.0, 1.0])).item() == 0.0
    assert rosenbrock(torch.tensor([[0.0, 0.0], [-1.0, 1.0]])).tolist() == [1.0, 4.0]


def test_train_2d_reproduces_d2l_momentum_and_gd():
    path = train_2d(functools.partial(sgd_step_, lr=0.6, momentum=0.5))
    assert path.shape == (21, 2)
    torch.testing.assert_close(
        path[-1], torch.tensor([0.007188, 0.002553]).double(), atol=1e-5, rtol=0
    )
    gd = train_2d(functools.partial(sgd_step_, lr=0.4))
    torch.testing.assert_close(
        gd[-1], torch.tensor([-0.943467, -0.000073]).double(), atol=1e-5, rtol=0
    )


def test_run_optimizer_counts_steps_to_tolerance_and_detects_divergence():
    f, _, _ = make_quadratic([1, 100])
    x0 = torch.tensor([-10.0, 1.0], dtype=torch.float64)
    gd = run_optimizer(lambda p: torch.optim.SGD(p, lr=0.019), f, x0, 2000, tol=1e-6)
    assert gd["steps_to_tol"] == 463 and gd["losses"][-1] <= 1e-6 < gd["losses"][-2]
    assert gd["trajectory"].shape == (464, 2) and gd["grad_norms"].shape == (464,)
    bad = run_optimizer(lambda p: torch.optim.SGD(p, lr=0.021), f, x0, 5000, tol=1e-6)
    assert bad["diverged"] and bad["steps_to_tol"] is None


def test_reddi_problem_adam_fails_and_amsgrad_does_not():
    adam = functools.partial(adam_step_, betas=(0.0, 0.1))
    ams = functools.partial(adam_step_, betas=(0.0, 0.1), amsgrad=True)
    assert reddi_problem(adam, T=3000) == 1.0
    assert reddi_problem(ams, T=3000) < -0.99
    assert reddi_problem(adam, T=3000, x0=-1.0) == 1.0  # even from the optimum


def test_step_functions_reject_bad_arguments():
    x = torch.zeros(2)
    x.grad = torch.ones(2)
    with pytest.raises(ValueError, match="lr"):
        sgd_step_([x], {}, lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        sgd_step_([x], {}, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="nesterov"):
        sgd_step_([x], {}, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="mode"):
        adagrad_step_([x], {}, mode="median")
    with pytest.raises(ValueError, match="alpha"):
        rmsprop_step_([x], {}, alpha=1.5)
    with pytest.raises(ValueError, match="rho"):
        adadelta_step_([x], {}, rho=-0.1)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        adam_step_([x], {}, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        yogi_step_([x], {}, eps=-1e-3)
    with pytest.raises(TypeError, match="params"):
        adam_step_(x, {})
    with pytest.raises(TypeError, match="state"):
        adam_step_([x], None)
    with pytest.raises(TypeError, match="step_fn"):
        ScratchOptimizer([x], "adam")


def test_surfaces_and_playgrounds_reject_bad_shapes():
    with pytest.raises(ValueError, match="eigs"):
        make_quadratic([])
    with pytest.raises(ValueError, match="angle"):
        make_quadratic([1.0, 2.0, 3.0], angle=0.1)
    f, _, _ = make_quadratic([1.0, 2.0])
    with pytest.raises(ValueError, match="x must have shape"):
        f(torch.zeros(3))
    with pytest.raises(ValueError, match="xy"):
        rosenbrock(torch.zeros(3))
    with pytest.raises(ValueError, match="x0"):
        train_2d(functools.partial(sgd_step_, lr=0.1), x0=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="x0"):
        run_optimizer(lambda p: torch.optim.SGD(p, lr=0.1), f, torch.zeros(2, 1), 3)
    with pytest.raises(ValueError, match="C"):
        reddi_problem(functools.partial(sgd_step_), C=1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_step_functions_run_on_the_parameters_device():
    x = torch.ones(3, device="cuda")
    x.grad = torch.ones(3, device="cuda")
    state: dict = {}
    adam_step_([x], state, lr=0.1, amsgrad=True)
    assert state[0]["exp_avg"].device.type == "cuda" and x.device.type == "cuda"


def test_plot_contour_paths_draws_one_line_per_path_and_checks_shapes():
    import matplotlib

    matplotlib.use("Agg")  # tests only
    import matplotlib.pyplot as plt

    from dlcourse.plot import plot_contour_paths

    f, _, _ = make_quadratic([1, 100])
    path = train_2d(functools.partial(sgd_step_, lr=0.015), x0=(-10.0, 1.0), f=f)
    ax = plot_contour_paths(f, {"GD": path, "start only": path[:1]}, (-11, 1), (-1.5, 1.5))
    assert len(ax.lines) == 4 and ax.get_legend() is not None  # a path and its start marker each
    with pytest.raises(ValueError, match="must be"):
        plot_contour_paths(rosenbrock, {"bad": torch.zeros(3, 3)}, (-2, 2), (-1, 3))
    with pytest.raises(ValueError, match="xlim"):
        plot_contour_paths(rosenbrock, {}, (2, -2), (-1, 3))
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# The chapter's exercise checks recognise typical wrong answers


def _adam_variant(eps_inside=False, correct_m=True, correct_v=True, in_place=True):
    @torch.no_grad()
    def step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        b1, b2 = betas
        state["t"] = state.get("t", 0) + 1
        for i, p in enumerate(params):
            m, v = state.get(i, (torch.zeros_like(p), torch.zeros_like(p)))
            m = b1 * m + (1 - b1) * p.grad
            v = b2 * v + (1 - b2) * p.grad**2
            state[i] = (m, v)
            m_hat = m / (1 - b1 ** state["t"]) if correct_m else m
            v_hat = v / (1 - b2 ** state["t"]) if correct_v else v
            denom = (v_hat + eps).sqrt() if eps_inside else v_hat.sqrt() + eps
            if in_place:
                p -= lr * m_hat / denom

    return step


def test_adam_exercise_accepts_a_student_style_adam():
    check("ex-optim-adam", _adam_variant())


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"eps_inside": True}, "step"),
        ({"correct_v": False}, "second moment"),
        ({"correct_m": False}, "first moment"),
        ({"correct_m": False, "correct_v": False}, "both bias corrections"),
        ({"in_place": False}, "did not change"),
    ],
)
def test_adam_exercise_explains_wrong_variants(variant, message):
    with pytest.raises(WrongAnswerError, match=message):
        check("ex-optim-adam", _adam_variant(**variant))


def test_adam_exercise_hints_at_no_grad():
    def no_no_grad(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        for p in params:
            p -= lr * p.grad

    with pytest.raises(WrongAnswerError, match="no_grad"):
        check("ex-optim-adam", no_no_grad)


def test_value_exercises_reject_typical_slips():
    with pytest.raises(WrongAnswerError, match="first step"):
        check("ex-optim-terminal-velocity", 0.1)
    with pytest.raises(WrongAnswerError, match="multiply by lr"):
        check("ex-optim-terminal-velocity", 10.0)
    with pytest.raises(WrongAnswerError, match="mean rule"):
        check("ex-optim-adaptive-rates", (5.0, lambda lr, T, g: lr / (T**0.5 * abs(g))))
    with pytest.raises(WrongAnswerError, match="does not decay"):
        check("ex-optim-adaptive-rates", (12.5**0.5, lambda lr, T, g: lr / abs(g)))
    with pytest.raises(WrongAnswerError, match="positive"):
        check("ex-optim-adaptive-rates", (12.5**0.5, lambda lr, T, g: lr / (T**0.5 * g)))
    with pytest.raises(WrongAnswerError, match="plain gradient descent"):
        check("ex-optim-momentum-stability", (0.5, True, False))
    with pytest.raises(WrongAnswerError, match="converges"):
        check("ex-optim-momentum-stability", (0.75, True, True))
