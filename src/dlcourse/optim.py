"""Optimizers and learning-rate schedules from scratch.

Every optimizer here is a plain function ``<name>_step_(params, state, **hyperparameters)`` that
updates ``params`` in place from their ``.grad``, the way one call of ``torch.optim.X.step()``
does, and keeps its buffers (momentum, running averages, step count) in the dict ``state``,
which the caller creates empty and passes back on every step. ``ScratchOptimizer`` wraps any of
them as a ``torch.optim.Optimizer`` so that it can drive an ordinary training loop.

The 2-D test functions (``make_quadratic``, ``rosenbrock``) and the playgrounds
(``train_2d``, ``run_optimizer``) let chapters draw an optimizer's path on a loss surface.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "ScratchOptimizer",
    "adadelta_step_",
    "adagrad_step_",
    "adam_step_",
    "as_lambda_lr",
    "clip_grad_norm_",
    "cosine_lr",
    "exponential_lr",
    "factor_lr",
    "gd",
    "lasso_ista",
    "lasso_subgradient",
    "make_quadratic",
    "param_groups",
    "piecewise_constant_lr",
    "polynomial_lr",
    "reddi_problem",
    "ridge_closed_form",
    "rmsprop_step_",
    "rosenbrock",
    "run_optimizer",
    "sgd_step_",
    "soft_threshold",
    "step_decay_lr",
    "train_2d",
    "transformer_lr",
    "yogi_step_",
]

# ---------------------------------------------------------------------------------------------
# Optimizer steps from scratch (momentum, AdaGrad, RMSProp, Adadelta, Adam/AdamW/AMSGrad, Yogi)
#
# Conventions shared by all step functions: ``params`` is an iterable of tensors; a parameter
# whose ``.grad`` is None is skipped (as torch.optim does). ``state[i]`` holds the buffers of the
# i-th parameter, including its own step count ``state[i]["step"]``. Arithmetic follows the
# order of torch.optim's single-tensor code, so the trajectories agree to rounding error.


def _check_params_state(params: Iterable[Tensor], state: dict) -> list[Tensor]:
    if isinstance(params, Tensor):
        raise TypeError("params must be an iterable of tensors (e.g. [x]), got a single tensor")
    params = list(params)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"params must hold tensors, got {type(p).__name__}")
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict (start with {{}}), got {type(state).__name__}")
    return params


def _check_range(name: str, value: float, low: float, high: float, closed_high: bool) -> None:
    inside = low <= value <= high if closed_high else low <= value < high
    if not (isinstance(value, int | float) and inside):
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value!r}")


def _check_nonneg(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and value >= 0.0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def _param_state(state: dict, i: int, p: Tensor, *buffers: str) -> dict[str, Any]:
    """The state of parameter ``i``: created on its first step with zero buffers."""
    s = state.setdefault(i, {})
    if not s:
        s["step"] = 0
        for name in buffers:
            s[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
    s["step"] += 1
    return s


def _gradients(params: list[Tensor], weight_decay: float = 0.0) -> Iterator[tuple]:
    """``(i, p, g)`` for each parameter with a gradient; ``g = p.grad + weight_decay * p`` (L2)."""
    for i, p in enumerate(params):
        if p.grad is not None:
            yield i, p, p.grad if weight_decay == 0.0 else p.grad.add(p, alpha=weight_decay)


def _adam_update_(
    p: Tensor,
    m: Tensor,
    v: Tensor,
    t: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    bias_correction: bool,
) -> None:
    r"""$\theta \leftarrow \theta - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)$, with
    $\hat m_t = m_t / (1-\beta_1^t)$ and $\hat v_t = v_t / (1-\beta_2^t)$ unless
    ``bias_correction=False``; the last step of Adam, AMSGrad and Yogi."""
    if bias_correction:
        step_size = lr / (1 - betas[0] ** t)
        denom = (v.sqrt() / math.sqrt(1 - betas[1] ** t)).add_(eps)
    else:
        step_size = lr
        denom = v.sqrt().add_(eps)
    p.addcdiv_(m, denom, value=-step_size)


@torch.no_grad()
def sgd_step_(
    params: Iterable[Tensor],
    state: dict,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> None:
    r"""One step of SGD with (heavy-ball or Nesterov) momentum, in PyTorch's convention.

    $g \leftarrow g + \lambda\theta$ (``weight_decay``), $v_t = \beta v_{t-1} + g_t$ with
    $v_1 = g_1$, then $\theta \leftarrow \theta - \eta v_t$ (heavy ball) or
    $\theta \leftarrow \theta - \eta(g_t + \beta v_t)$ (Nesterov). With constant $\eta$ this is
    the textbook $m_t = \beta m_{t-1} - \eta g_t$, $\theta_t = \theta_{t-1} + m_t$, $m = -\eta v$.
    Buffers: ``momentum_buffer`` (shape of the parameter).
    """
    params = _check_params_state(params, state)
    _check_nonneg(lr=lr, weight_decay=weight_decay)
    _check_range("momentum", momentum, 0.0, 1.0, closed_high=False)
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0")
    for i, p, g in _gradients(params, weight_decay):
        if momentum != 0.0:
            s = state.setdefault(i, {"step": 0})
            s["step"] += 1
            if "momentum_buffer" not in s:
                s["momentum_buffer"] = g.clone()  # v_1 = g_1 (m_0 = 0)
            else:
                s["momentum_buffer"].mul_(momentum).add_(g)
            v = s["momentum_buffer"]
            g = g.add(v, alpha=momentum) if nesterov else v
        p.add_(g, alpha=-lr)


@torch.no_grad()
def adagrad_step_(
    params: Iterable[Tensor],
    state: dict,
    lr: float = 1e-2,
    eps: float = 1e-10,
    mode: Literal["sum", "mean"] = "sum",
    eps_inside_sqrt: bool = False,
    weight_decay: float = 0.0,
) -> None:
    r"""One step of AdaGrad: per-coordinate rates from the accumulated squared gradients.

    $s_t = s_{t-1} + g_t^2$, $\theta_t = \theta_{t-1} - \eta\, g_t / (\sqrt{s_t} + \epsilon)$
    (PyTorch, ``mode="sum"``). ``mode="mean"`` divides by the running *mean* RMS
    $\sqrt{s_t / t}$ instead, the lecture variant, whose first step is $\eta\,\mathrm{sign}(g_1)$
    and whose rate does not decay. ``eps_inside_sqrt=True`` uses $\sqrt{s_t+\epsilon}$ (D2L).
    Buffers: ``sum`` (shape of the parameter).
    """
    params = _check_params_state(params, state)
    _check_nonneg(lr=lr, eps=eps, weight_decay=weight_decay)
    if mode not in ("sum", "mean"):
        raise ValueError(f"mode must be 'sum' or 'mean', got {mode!r}")
    for i, p, g in _gradients(params, weight_decay):
        s = _param_state(state, i, p, "sum")
        s["sum"].addcmul_(g, g)
        acc = s["sum"] if mode == "sum" else s["sum"] / s["step"]
        denom = acc.add(eps).sqrt_() if eps_inside_sqrt else acc.sqrt().add_(eps)
        p.addcdiv_(g, denom, value=-lr)


@torch.no_grad()
def rmsprop_step_(
    params: Iterable[Tensor],
    state: dict,
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    eps_inside_sqrt: bool = False,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> None:
    r"""One step of RMSProp: AdaGrad with a leaky average of the squared gradients.

    $s_t = \alpha s_{t-1} + (1-\alpha) g_t^2$ with $s_0 = 0$,
    $\theta_t = \theta_{t-1} - \eta\, g_t / (\sqrt{s_t} + \epsilon)$ (PyTorch's defaults:
    $\alpha = 0.99$, $\epsilon$ outside the root). ``centered=True`` divides by the standard
    deviation $\sqrt{s_t - \bar g_t^2}$ with $\bar g_t$ the leaky mean of $g$; ``momentum > 0``
    accumulates $b_t = \mu b_{t-1} + g_t/(\ldots)$ and steps by $-\eta b_t$.
    Buffers: ``square_avg`` (and ``grad_avg``, ``momentum_buffer``).
    """
    params = _check_params_state(params, state)
    _check_nonneg(lr=lr, eps=eps, weight_decay=weight_decay)
    _check_range("alpha", alpha, 0.0, 1.0, closed_high=False)
    _check_range("momentum", momentum, 0.0, 1.0, closed_high=False)
    for i, p, g in _gradients(params, weight_decay):
        s = _param_state(state, i, p, "square_avg", "grad_avg", "momentum_buffer")
        s["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
        second = s["square_avg"]
        if centered:
            s["grad_avg"].lerp_(g, 1 - alpha)
            second = second.addcmul(s["grad_avg"], s["grad_avg"], value=-1)
        denom = second.add(eps).sqrt_() if eps_inside_sqrt else second.sqrt().add_(eps)
        if momentum > 0.0:
            s["momentum_buffer"].mul_(momentum).addcdiv_(g, denom)
            p.add_(s["momentum_buffer"], alpha=-lr)
        else:
            p.addcdiv_(g, denom, value=-lr)


@torch.no_grad()
def adadelta_step_(
    params: Iterable[Tensor],
    state: dict,
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> None:
    r"""One step of Adadelta: the step's own running size replaces the learning rate.

    $s_t = \rho s_{t-1} + (1-\rho) g_t^2$,
    $g'_t = \sqrt{(\Delta x_{t-1} + \epsilon) / (s_t + \epsilon)}\odot g_t$,
    $\Delta x_t = \rho\Delta x_{t-1} + (1-\rho) g'^2_t$, $\theta_t = \theta_{t-1} - \eta g'_t$.
    The paper has no $\eta$ (it is 1); PyTorch keeps ``lr`` with default 1.0.
    Buffers: ``square_avg`` ($s$), ``acc_delta`` ($\Delta x$).
    """
    params = _check_params_state(params, state)
    _check_nonneg(lr=lr, eps=eps, weight_decay=weight_decay)
    _check_range("rho", rho, 0.0, 1.0, closed_high=True)
    for i, p, g in _gradients(params, weight_decay):
        s = _param_state(state, i, p, "square_avg", "acc_delta")
        s["square_avg"].mul_(rho).addcmul_(g, g, value=1 - rho)
        std = s["square_avg"].add(eps).sqrt_()
        delta = s["acc_delta"].add(eps).sqrt_().div_(std).mul_(g)  # g'_t
        s["acc_delta"].mul_(rho).addcmul_(delta, delta, value=1 - rho)
        p.add_(delta, alpha=-lr)


def _check_betas(betas: Sequence[float]) -> tuple[float, float]:
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = betas
    _check_range("betas[0]", beta1, 0.0, 1.0, closed_high=False)
    _check_range("betas[1]", beta2, 0.0, 1.0, closed_high=False)
    return float(beta1), float(beta2)


@torch.no_grad()
def adam_step_(
    params: Iterable[Tensor],
    state: dict,
    lr: float = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    amsgrad: bool = False,
    bias_correction: bool = True,
) -> None:
    r"""One step of Adam; also Adam + L2 (``weight_decay``), AdamW (``decoupled=True``), AMSGrad.

    $m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t$, $v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$,
    $\hat m_t = m_t/(1-\beta_1^t)$, $\hat v_t = v_t/(1-\beta_2^t)$,
    $\theta_t = \theta_{t-1} - \eta\,\hat m_t/(\sqrt{\hat v_t} + \epsilon)$.

    Weight decay $\lambda$: Adam + L2 adds $\lambda\theta$ to $g_t$ (so the decay is divided by
    $\sqrt{\hat v_t}$ too); AdamW first shrinks $\theta \leftarrow (1 - \eta\lambda)\theta$.
    AMSGrad divides by the running maximum of $v_t$ (as PyTorch does, then bias-corrected).
    ``bias_correction=False`` uses $m_t$ and $v_t$ as they are.
    Buffers: ``exp_avg`` ($m$), ``exp_avg_sq`` ($v$), ``max_exp_avg_sq``.
    """
    params = _check_params_state(params, state)
    _check_nonneg(lr=lr, eps=eps, weight_decay=weight_decay)
    beta1, beta2 = _check_betas(betas)
    buffers = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
    for i, p, g in _gradients(params, 0.0 if decoupled else weight_decay):
        s = _param_state(state, i, p, *buffers)
        if decoupled and weight_decay != 0.0:
            p.mul_(1 - lr * weight_decay)
        s["exp_avg"].lerp_(g, 1 - beta1)  # beta1 m + (1 - beta1) g
        s["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        v = s["exp_avg_sq"]
        if amsgrad:
            torch.maximum(s["max_exp_avg_sq"], v, out=s["max_exp_avg_sq"])
            v = s["max_exp_avg_sq"]
        _adam_update_(p, s["exp_avg"], v, s["step"], lr, (beta1, beta2), eps, bias_correction)


@torch.no_grad()
def yogi_step_(
    params: Iterable[Tensor],
    state: dict,
    lr: float = 1e-2,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-3,
    bias_correction: bool = True,
) -> None:
    r"""One step of Yogi (Zaheer et al. 2018): Adam with an additive second-moment update.

    $s_t = s_{t-1} + (1-\beta_2)\, g_t^2 \odot \mathrm{sign}(g_t^2 - s_{t-1})$, so one step
    moves $s$ by exactly $(1-\beta_2) g_t^2$ (or not at all), however large $s$ is; Adam's
    $v_t - v_{t-1} = (1-\beta_2)(g_t^2 - v_{t-1})$ can forget a large $v$ quickly. The rest is
    Adam's: $m_t$, bias correction (as in D2L; ``bias_correction=False`` is the paper's form)
    and $\theta_t = \theta_{t-1} - \eta\,\hat m_t / (\sqrt{\hat s_t} + \epsilon)$. No torch
    version exists. Buffers: ``exp_avg`` ($m$), ``exp_avg_sq`` ($s$).
    """
    params = _check_params_state(params, state)
    _check_nonneg(lr=lr, eps=eps)
    beta1, beta2 = _check_betas(betas)
    for i, p, g in _gradients(params):
        s = _param_state(state, i, p, "exp_avg", "exp_avg_sq")
        s["exp_avg"].lerp_(g, 1 - beta1)
        g2 = g * g
        s["exp_avg_sq"].addcmul_(torch.sign(g2 - s["exp_avg_sq"]), g2, value=1 - beta2)
        _adam_update_(p, s["exp_avg"], s["exp_avg_sq"], s["step"], lr, (beta1, beta2), eps,
                      bias_correction)  # fmt: skip


class ScratchOptimizer(torch.optim.Optimizer):
    """Any ``*_step_`` function above as a ``torch.optim.Optimizer``.

    ``ScratchOptimizer(model.parameters(), adam_step_, lr=1e-3)`` calls
    ``adam_step_(group_params, group_state, lr=1e-3)`` for each parameter group on ``step()``,
    so it works with ``dlcourse.train.fit``, ``zero_grad`` and learning-rate schedulers (which
    change ``group["lr"]``). Only the hyperparameters given here are passed to the function.
    The step functions' buffers live in ``self.scratch_state`` (not in ``state_dict()``).
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], step_fn: Callable, **hp: Any):
        if not callable(step_fn):
            raise TypeError(f"step_fn must be callable, got {type(step_fn).__name__}")
        super().__init__(params, defaults=hp)
        self.step_fn = step_fn
        self.scratch_state: dict[int, dict] = {}

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            hp = {name: group[name] for name in self.defaults}
            self.step_fn(group["params"], self.scratch_state.setdefault(index, {}), **hp)
        return loss


# ---------------------------------------------------------------------------------------------
# Loss surfaces and playgrounds


def make_quadratic(
    eigs: Sequence[float], angle: float = 0.0
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], Tensor]:
    r"""$f(x) = \tfrac12 x^\top H x$, its gradient $Hx$ and $H = R\,\mathrm{diag}(\lambda)R^\top$.

    ``eigs``: the eigenvalues $\lambda_i$ (the curvatures along the eigendirections), ``d`` of
    them; ``angle`` (radians, 2-D only) rotates the eigenvectors by $R$. ``f`` maps ``(..., d)``
    to ``(...)`` and ``grad`` maps ``(..., d)`` to ``(..., d)``, in the input's dtype and
    device. ``H``: ``(d, d)`` float64. The ravine $\tfrac12(x^2 + 100y^2)$ is
    ``make_quadratic([1, 100])``.
    """
    eigs_t = torch.as_tensor(eigs, dtype=torch.float64)
    if eigs_t.ndim != 1 or len(eigs_t) == 0:
        raise ValueError(f"eigs must be a non-empty sequence of numbers, got {eigs!r}")
    if angle != 0.0 and len(eigs_t) != 2:
        raise ValueError(f"angle needs 2 eigenvalues (a 2-D quadratic), got {len(eigs_t)}")
    c, s = math.cos(angle), math.sin(angle)
    if len(eigs_t) == 2:
        rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    else:
        rotation = torch.eye(len(eigs_t), dtype=torch.float64)
    hessian = rotation @ torch.diag(eigs_t) @ rotation.T
    d = len(eigs_t)

    def _h(x: Tensor) -> Tensor:
        if x.shape[-1:] != (d,):
            raise ValueError(f"x must have shape (..., {d}), got {tuple(x.shape)}")
        return hessian.to(dtype=x.dtype, device=x.device)

    def f(x: Tensor) -> Tensor:
        return 0.5 * ((x @ _h(x)) * x).sum(-1)

    def grad(x: Tensor) -> Tensor:
        return x @ _h(x)  # H is symmetric

    return f, grad, hessian


def rosenbrock(xy: Tensor, a: float = 1.0, b: float = 100.0) -> Tensor:
    r"""Rosenbrock's banana valley $(a - x)^2 + b\,(y - x^2)^2$; minimum 0 at $(a, a^2)$.

    ``xy``: ``(..., 2)``; returns ``(...)``.
    """
    if not isinstance(xy, Tensor) or xy.shape[-1:] != (2,):
        raise ValueError(f"xy must be a tensor of shape (..., 2), got {getattr(xy, 'shape', xy)}")
    x, y = xy[..., 0], xy[..., 1]
    return (a - x) ** 2 + b * (y - x**2) ** 2


def _playground_default(x: Tensor) -> Tensor:
    return 0.1 * x[..., 0] ** 2 + 2 * x[..., 1] ** 2


def train_2d(
    step_fn: Callable[[list[Tensor], dict], None],
    x0: Sequence[float] | Tensor = (-5.0, -2.0),
    steps: int = 20,
    f: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    r"""Run a scratch optimizer on a 2-D function; return the path, ``(steps + 1, 2)`` float64.

    ``step_fn(params, state)`` is a ``*_step_`` function with its hyperparameters bound, e.g.
    ``functools.partial(sgd_step_, lr=0.4)``. Default $f = 0.1x_1^2 + 2x_2^2$ (D2L's
    playground). Gradients come from autograd on ``f``.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x = torch.as_tensor(x0, dtype=torch.float64).detach().clone()
    if x.shape != (2,):
        raise ValueError(f"x0 must hold 2 numbers, got shape {tuple(x.shape)}")
    f = f or _playground_default
    x.requires_grad_(True)
    state: dict = {}
    path = [x.detach().clone()]
    for _ in range(steps):
        x.grad = None
        f(x).backward()
        step_fn([x], state)
        path.append(x.detach().clone())
    return torch.stack(path)


def run_optimizer(
    make_opt: Callable[[list[Tensor]], torch.optim.Optimizer],
    loss_fn: Callable[[Tensor], Tensor],
    x0: Tensor,
    steps: int,
    tol: float | None = None,
) -> dict[str, Any]:
    """Minimise ``loss_fn`` from ``x0`` with ``make_opt([x])`` for up to ``steps`` steps.

    Returns a dict: ``trajectory`` ``(n + 1, d)``, ``losses`` and ``grad_norms`` ``(n + 1,)``
    (at every point of the trajectory), ``steps_to_tol`` (the number of steps after which the
    loss first reached ``<= tol``; the run stops there; None if never) and ``diverged`` (the
    loss became NaN or infinite; the run stops there too). ``x0``: ``(d,)``, any dtype/device.
    """
    if not isinstance(x0, Tensor) or x0.ndim != 1:
        raise ValueError(f"x0 must be a 1-D tensor (d,), got {getattr(x0, 'shape', x0)}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x = x0.detach().clone().requires_grad_(True)
    opt = make_opt([x])
    path, losses, norms = [], [], []
    steps_to_tol, diverged = None, False
    for t in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        path.append(x.detach().clone())
        losses.append(loss.item())
        norms.append(x.grad.norm().item())
        if not math.isfinite(losses[-1]):
            diverged = True
            break
        if tol is not None and losses[-1] <= tol:
            steps_to_tol = t
            break
        if t < steps:
            opt.step()
    return {
        "trajectory": torch.stack(path),
        "losses": torch.tensor(losses, dtype=torch.float64),
        "grad_norms": torch.tensor(norms, dtype=torch.float64),
        "steps_to_tol": steps_to_tol,
        "diverged": diverged,
    }


def reddi_problem(
    step_fn: Callable[..., None],
    T: int = 30_000,
    C: float = 3.0,
    x0: float = 0.0,
    lr: float = 0.1,
) -> float:
    r"""Final iterate of Reddi et al.'s (2018) online problem on $[-1, 1]$.

    $f_t(x) = Cx$ when $t \bmod 3 = 1$, else $-x$ (so the average loss $(C-2)x/3$ is minimised
    at $x = -1$). ``step_fn(params, state, lr=...)`` is a ``*_step_`` function with its other
    hyperparameters bound; it gets $\eta_t = \mathrm{lr}/\sqrt t$ and the iterate is projected
    back onto $[-1, 1]$ after every step. Runs in float64 from ``x0`` (the centre).
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    if C <= 2:
        raise ValueError(f"C must be > 2 (so that x = -1 is optimal), got {C!r}")
    x = torch.tensor([float(x0)], dtype=torch.float64)
    big, small = torch.tensor([float(C)], dtype=torch.float64), torch.tensor([-1.0]).double()
    state: dict = {}
    for t in range(1, T + 1):
        x.grad = big if t % 3 == 1 else small
        step_fn([x], state, lr=lr / math.sqrt(t))
        x.clamp_(-1.0, 1.0)
    return x.item()


# ---------------------------------------------------------------------------------------------
# Gradient clipping by the global norm (chapter 2.8)


def clip_grad_norm_(
    params: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0
) -> Tensor:
    """Rescale all gradients in place so that their joint norm is at most ``max_norm``.

    With :math:`\\lVert g\\rVert` the ``norm_type``-norm of every ``.grad`` concatenated
    (``dlcourse.train.global_grad_norm``), each gradient becomes :math:`g \\cdot
    \\min(1, c / (\\lVert g\\rVert + 10^{-6}))`, :math:`c` = ``max_norm``: one common factor, so
    the direction of the full gradient is kept. Returns the norm *before* clipping (a 0-dim
    tensor), as ``torch.nn.utils.clip_grad_norm_`` does. Parameters without ``.grad`` are
    skipped. It bounds explosions only: a vanishing gradient is left as it is.
    """
    from .train import global_grad_norm

    if torch.is_tensor(params):
        params = [params]
    params = list(params)
    max_norm = float(max_norm)
    if not max_norm >= 0.0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    total = global_grad_norm(params, norm_type)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return total
    factor = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.to(g.device, g.dtype))
    return total


# =============================================================================================
# Chapter 2.4: learning-rate schedules as stateless functions of the step
#
# Each schedule maps a step (or epoch) count ``t`` to a learning rate and keeps no state, so a
# repeated call gives the same value and any value can be read without replaying the past.
# ``as_lambda_lr`` turns one into a ``torch.optim.lr_scheduler.LambdaLR``.


def _check_step(name: str, t: int, low: int = 0) -> None:
    if isinstance(t, bool) or not isinstance(t, int) or t < low:
        raise ValueError(f"{name} must be an int >= {low}, got {t!r}")


def piecewise_constant_lr(t: int, boundaries: Sequence[int], values: Sequence[float]) -> float:
    r"""$\eta_t = v_i$ for $b_{i-1} \le t < b_i$ (with $b_{-1} = 0$, $b_n = \infty$).

    ``boundaries``: ``n`` increasing steps; ``values``: ``n + 1`` rates. The rate changes *at*
    a boundary, as in ``torch.optim.lr_scheduler.MultiStepLR`` (which uses
    $v_i = \eta_0\gamma^i$).
    """
    _check_step("t", t)
    boundaries, values = list(boundaries), list(values)
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"values must hold len(boundaries) + 1 = {len(boundaries) + 1} rates, got {len(values)}"
        )
    if any(b >= c for b, c in zip(boundaries, boundaries[1:], strict=False)):
        raise ValueError(f"boundaries must be strictly increasing, got {boundaries!r}")
    return float(values[sum(1 for b in boundaries if t >= b)])


def factor_lr(t: int, base_lr: float, factor: float, min_lr: float = 0.0) -> float:
    r"""$\eta_t = \max(\eta_{\min}, \eta_0\gamma^{t+1})$: the factor schedule, stateless.

    The $t$-th call (from 0) of a stateful scheduler that does ``lr = max(min_lr, lr * factor)``
    on every call returns exactly this, so the first value is already $\eta_0\gamma$.
    """
    _check_step("t", t)
    _check_nonneg(base_lr=base_lr, min_lr=min_lr)
    _check_range("factor", factor, 0.0, 1.0, closed_high=True)
    return max(float(min_lr), base_lr * factor ** (t + 1))


def exponential_lr(t: int, eta0: float, k: float) -> float:
    r"""$\eta_t = \eta_0 e^{-kt}$; ``ExponentialLR(gamma)`` is the case $k = -\ln\gamma$."""
    _check_step("t", t)
    _check_nonneg(eta0=eta0, k=k)
    return eta0 * math.exp(-k * t)


def polynomial_lr(t: int, eta0: float, c: float = 1.0, power: float = 0.5) -> float:
    r"""$\eta_t = \eta_0 (1 + ct)^{-p}$ (``power`` $= p$; $p = 0.5$ is D2L's choice).

    Not ``torch.optim.lr_scheduler.PolynomialLR``, which is $\eta_0(1 - t/T)^p$, reaching 0 at T.
    """
    _check_step("t", t)
    _check_nonneg(eta0=eta0, c=c, power=power)
    return eta0 * (1.0 + c * t) ** (-power)


def cosine_lr(
    t: int,
    max_update: int,
    base_lr: float,
    final_lr: float = 0.0,
    warmup_steps: int = 0,
    warmup_begin_lr: float = 0.0,
) -> float:
    r"""Linear warm-up over $W$ steps, then cosine decay from $\eta_0$ to $\eta_T$ at step $T$.

    $\eta_t = \eta_w + (\eta_0 - \eta_w)\,t/W$ for $t < W$;
    $\eta_t = \eta_T + \tfrac12(\eta_0 - \eta_T)\bigl(1 + \cos\frac{\pi (t - W)}{T - W}\bigr)$
    for $W \le t \le T$; $\eta_t = \eta_T$ for $t > T$ (``max_update`` $= T$). With $W = 0$
    this is ``CosineAnnealingLR(T_max=T, eta_min=final_lr)`` for $t \le T$ (torch's keeps
    oscillating after $T$); with $W > 0$, ``SequentialLR([LinearLR, CosineAnnealingLR])``.
    """
    _check_step("t", t)
    _check_step("warmup_steps", warmup_steps)
    _check_step("max_update", max_update, low=warmup_steps + 1)
    _check_nonneg(base_lr=base_lr, final_lr=final_lr, warmup_begin_lr=warmup_begin_lr)
    if t < warmup_steps:
        return warmup_begin_lr + (base_lr - warmup_begin_lr) * t / warmup_steps
    if t > max_update:
        return float(final_lr)
    progress = (t - warmup_steps) / (max_update - warmup_steps)
    return final_lr + (base_lr - final_lr) * (1 + math.cos(math.pi * progress)) / 2


def transformer_lr(step: int, d_model: int = 512, warmup_steps: int = 4000) -> float:
    r"""Vaswani et al. (2017): $\eta(s) = d^{-1/2}\min(s^{-1/2}, s\,W^{-3/2})$ for $s \ge 1$.

    Linear growth up to the peak $(dW)^{-1/2}$ at $s = W$, then decay like $s^{-1/2}$. The
    step counts from 1: at $s = 0$ the formula is $0^{-1/2}$, undefined, so it raises.
    """
    _check_step("step", step, low=1)
    _check_step("d_model", d_model, low=1)
    _check_step("warmup_steps", warmup_steps, low=1)
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def step_decay_lr(
    it: int,
    base_lr: float = 0.1,
    milestones: Sequence[int] = (32_000, 48_000),
    gamma: float = 0.1,
    warmup_lr: float | None = None,
    warmup_iters: int = 0,
) -> float:
    r"""$\eta = \eta_0\gamma^{\#\{m \le it\}}$, with an optional constant warm-up rate.

    The ResNet-110 CIFAR-10 recipe (He et al. 2016): 0.1, divided by 10 at iterations 32k and
    48k, after ``warmup_lr = 0.01`` for the first ``warmup_iters`` (about 400) iterations. After
    the warm-up it equals ``MultiStepLR(milestones, gamma)``.
    """
    _check_step("it", it)
    _check_step("warmup_iters", warmup_iters)
    _check_nonneg(base_lr=base_lr)
    _check_range("gamma", gamma, 0.0, 1.0, closed_high=True)
    milestones = list(milestones)
    if any(m1 >= m2 for m1, m2 in zip(milestones, milestones[1:], strict=False)):
        raise ValueError(f"milestones must be strictly increasing, got {milestones!r}")
    if warmup_lr is not None:
        _check_nonneg(warmup_lr=warmup_lr)
        if it < warmup_iters:
            return float(warmup_lr)
    return base_lr * gamma ** sum(1 for m in milestones if it >= m)


def as_lambda_lr(
    optimizer: torch.optim.Optimizer, schedule: Callable[[int], float]
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` that sets every group's rate to ``schedule(t)``, ``t`` = ``step()`` calls.

    ``LambdaLR`` multiplies each group's initial rate by the lambda's value, so the lambda here
    is ``schedule(t) / initial_lr`` (every group must start from a positive rate). The rate is
    ``schedule(0)`` right after construction.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
    if not callable(schedule):
        raise TypeError(f"schedule must be a function of the step, got {type(schedule)}")
    lambdas = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        if not base > 0:
            raise ValueError(f"optimizer's lr must be > 0 to rescale it, got {base!r}")
        lambdas.append(lambda t, base=base: schedule(t) / base)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


# =============================================================================================
# Chapter 2.6 (regularization): ridge, soft-thresholding, LASSO by ISTA and by sub-gradients,
# parameter groups for weight decay
# =============================================================================================


def _check_design(X: Tensor, y: Tensor) -> None:
    if not (torch.is_tensor(X) and X.is_floating_point() and X.ndim == 2):
        raise ValueError(f"X must be a floating-point (n, p) tensor, got {getattr(X, 'shape', X)}")
    if not (torch.is_tensor(y) and y.shape == X.shape[:1]):
        raise ValueError(f"y must be an (n,) tensor matching X's {X.shape[0]} rows")


def soft_threshold(v: Tensor, t: float) -> Tensor:
    r"""Soft-thresholding $S_t(v) = \mathrm{sign}(v)\max(|v| - t, 0)$, elementwise.

    The proximal operator of $t\lVert\cdot\rVert_1$: entries with $|v| \le t$ become exactly
    zero, the others move $t$ toward zero. ``v``: any shape; ``t >= 0``.
    """
    if not torch.is_tensor(v):
        raise TypeError(f"v must be a tensor, got {type(v).__name__}")
    if not t >= 0:
        raise ValueError(f"t must be >= 0, got {t}")
    return torch.sign(v) * torch.clamp(v.abs() - t, min=0.0)


def ridge_closed_form(
    X: Tensor, y: Tensor, lam: float, fit_intercept: bool = True
) -> tuple[Tensor, Tensor]:
    r"""Ridge regression $\min_{w,b}\lVert y - Xw - b\rVert^2 + \lambda\lVert w\rVert^2$.

    $\hat w = (X_c^\top X_c + \lambda I)^{-1} X_c^\top y_c$ on centred data and
    $\hat b = \bar y - \bar x^\top\hat w$ (the intercept is not penalized), as scikit-learn's
    ``Ridge(alpha=lam)``. ``X: (n, p)``, ``y: (n,)`` -> ``(w: (p,), b: 0-dim)``.
    """
    _check_design(X, y)
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    y = y.to(X.dtype)
    if fit_intercept:
        x_mean, y_mean = X.mean(0), y.mean()
    else:
        x_mean, y_mean = torch.zeros_like(X[0]), torch.zeros_like(y[0])
    Xc, yc = X - x_mean, y - y_mean
    A = Xc.T @ Xc + lam * torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
    w = torch.linalg.solve(A, Xc.T @ yc)
    return w, y_mean - x_mean @ w


def _lasso_lr(X: Tensor, lr: float | None) -> float:
    if lr is None:  # 1 / L, L the Lipschitz constant of the gradient of (1/2n)||y - Xw||^2
        return 1.0 / torch.linalg.matrix_norm(X, ord=2).item() ** 2 * X.shape[0]
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    return float(lr)


def _check_lasso(X: Tensor, y: Tensor, lam: float, steps: int) -> None:
    _check_design(X, y)
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def lasso_ista(
    X: Tensor, y: Tensor, lam: float, steps: int = 5000, lr: float | None = None
) -> Tensor:
    r"""LASSO $\min_w \frac1{2n}\lVert y - Xw\rVert^2 + \lambda\lVert w\rVert_1$ by ISTA.

    Proximal gradient: $w \leftarrow S_{\eta\lambda}(w - \eta\nabla L(w))$ with
    $\nabla L = X^\top(Xw - y)/n$ and $\eta = 1/L$ by default ($L = \sigma_{max}(X)^2/n$). The
    soft-threshold puts coordinates at exactly zero. Same objective as scikit-learn's
    ``Lasso(alpha=lam, fit_intercept=False)``. ``X: (n, p)``, ``y: (n,)`` -> ``w: (p,)``.
    """
    _check_lasso(X, y, lam, steps)
    eta, n = _lasso_lr(X, lr), X.shape[0]
    y = y.to(X.dtype)
    w = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    for _ in range(steps):
        w = soft_threshold(w - eta * (X.T @ (X @ w - y)) / n, eta * lam)
    return w


def lasso_subgradient(
    X: Tensor, y: Tensor, lam: float, steps: int = 5000, lr: float | None = None
) -> Tensor:
    r"""The same LASSO objective as ``lasso_ista`` by plain sub-gradient descent.

    $w \leftarrow w - \eta\,(\nabla L(w) + \lambda\,\mathrm{sign}(w))$. The L1 term pushes by
    a constant $\eta\lambda$, so a coordinate near zero jumps over it and back: it oscillates in
    a band of width about $\eta\lambda$ and (almost surely) never lands on exactly zero.
    """
    _check_lasso(X, y, lam, steps)
    eta, n = _lasso_lr(X, lr), X.shape[0]
    y = y.to(X.dtype)
    w = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    for _ in range(steps):
        w = w - eta * ((X.T @ (X @ w - y)) / n + lam * torch.sign(w))
    return w


_NORM_TYPES = (
    torch.nn.modules.batchnorm._NormBase,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.LocalResponseNorm,
)


def param_groups(
    model: torch.nn.Module,
    weight_decay: float,
    no_decay: Sequence[str] = ("bias", "norm"),
) -> list[dict]:
    """Two optimizer parameter groups: decayed weights and undecayed biases/normalization.

    A parameter goes to the no-decay group when its name (from ``named_parameters``) contains
    one of the substrings ``no_decay``, or when it belongs to a normalization layer (BatchNorm,
    LayerNorm, GroupNorm), whatever its name. Returns
    ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}]``,
    ready for ``torch.optim.AdamW(param_groups(model, 0.01), lr=...)``. Frozen parameters
    (``requires_grad=False``) are left out; each parameter appears once.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if isinstance(no_decay, str):
        raise TypeError("no_decay must be a sequence of name substrings, not a single str")
    norm_params = {
        id(p)
        for m in model.modules()
        if isinstance(m, _NORM_TYPES)
        for p in m.parameters(recurse=False)
    }
    decay, skip = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in norm_params or any(key in name for key in no_decay):
            skip.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": skip, "weight_decay": 0.0},
    ]


# ---------------------------------------------------------------------------------------------
# Plain gradient descent on a known gradient (chapter 2.1)


def gd(grad_fn: Callable[[Tensor], Tensor], x0: Tensor, lr: float, steps: int) -> Tensor:
    r"""Gradient descent $x_{t+1} = x_t - \eta\,\nabla f(x_t)$; return the whole trajectory.

    ``grad_fn`` maps ``(d,)`` to ``(d,)`` (e.g. the gradient from ``make_quadratic``); ``x0``:
    ``(d,)`` floating tensor, any device. Returns ``(steps + 1, d)`` in ``x0``'s dtype, row 0 being
    ``x0``. A diverging run simply fills with huge values, infinities or NaN.
    """
    if not isinstance(x0, Tensor) or x0.ndim != 1 or not x0.is_floating_point():
        raise ValueError(f"x0 must be a floating 1-D tensor (d,), got {getattr(x0, 'shape', x0)}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    path = [x0.detach().clone()]
    for _ in range(steps):
        g = grad_fn(path[-1])
        if g.shape != x0.shape:
            raise ValueError(f"grad_fn must return shape {tuple(x0.shape)}, got {tuple(g.shape)}")
        path.append(path[-1] - lr * g)
    return torch.stack(path)
