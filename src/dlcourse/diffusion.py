"""Denoising diffusion: the DDPM forward process, its training loss, and the DDPM/DDIM samplers.

Conventions used throughout (Ho et al. 2020, Song et al. 2021):

- time steps are ``t = 1, ..., T``; every schedule tensor has length ``T + 1`` and index ``t``
  reads step ``t``; index 0 is the clean data (``beta_0 = 0``, ``alpha_bar_0 = 1``);
- ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``, ``eps ~ N(0, I)``;
- a denoiser is any callable ``eps_model(x_t, t) -> eps_hat`` with ``x_t: (B, *D)`` and
  ``t: (B,)`` int64; ``EpsMLP`` is the small one used on 2-D toy data.

Randomness always enters through a ``generator`` (or an explicit ``noise``/``x_T`` tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "EpsMLP",
    "ddim_sample",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_loss",
    "ddpm_sample",
    "ddpm_schedule",
    "predict_eps_from_x0",
    "predict_x0_from_eps",
    "predict_x0_from_v",
    "q_posterior",
    "q_sample",
    "q_step",
    "timestep_embedding",
    "v_target",
]

EpsModel = Callable[[Tensor, Tensor], Tensor]
_SCHEDULE_KEYS = ("betas", "alphas", "alpha_bar", "alpha_bar_prev", "posterior_var", "snr")


# ---------------------------------------------------------------------------------------------
# Noise schedules


def ddpm_schedule(
    T: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    kind: Literal["linear", "cosine"] = "linear",
    s: float = 0.008,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """The DDPM noise schedule as ``dtype`` tensors of length ``T + 1`` (index ``t = 0..T``).

    - ``linear``: ``beta_t`` evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al.);
    - ``cosine``: ``alpha_bar_t = f(t) / f(0)``, ``f(t) = cos^2((t/T + s) / (1 + s) * pi/2)``,
      with ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}`` clipped at 0.999 (Nichol & Dhariwal).

    Returned keys: ``betas``, ``alphas = 1 - betas``, ``alpha_bar`` (cumulative product),
    ``alpha_bar_prev`` (``alpha_bar_{t-1}``, with ``alpha_bar_prev[0] = 1``),
    ``posterior_var`` (``beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t``) and
    ``snr`` (``alpha_bar_t / (1 - alpha_bar_t)``, infinite at ``t = 0``). Index 0 is the clean
    data: ``beta_0 = 0`` and ``alpha_bar_0 = 1``. Computed in float64, returned as ``dtype``
    (float32 by default; pass ``torch.float64`` for exact checks near ``t = 1``).
    """
    if not isinstance(T, int) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    if kind == "linear":
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ValueError(
                f"beta_start and beta_end must satisfy 0 < beta_start <= beta_end < 1, "
                f"got {beta_start} and {beta_end}"
            )
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    elif kind == "cosine":
        if s <= 0:
            raise ValueError(f"s must be > 0 for the cosine schedule, got {s}")
        steps = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
        ratio = (f / f[0])[1:] / (f / f[0])[:-1]
        betas = (1 - ratio).clamp(max=0.999)
    else:
        raise ValueError(f"kind must be 'linear' or 'cosine', got {kind!r}")
    betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, dim=0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    posterior_var = torch.zeros_like(betas)
    posterior_var[1:] = (1 - alpha_bar_prev[1:]) / (1 - alpha_bar[1:]) * betas[1:]
    snr = alpha_bar / (1 - alpha_bar)  # inf at t = 0
    values = (betas, alphas, alpha_bar, alpha_bar_prev, posterior_var, snr)
    return {k: v.to(dtype) for k, v in zip(_SCHEDULE_KEYS, values, strict=True)}


def _check_schedule(schedule: dict[str, Tensor]) -> int:
    """Validate a schedule dict; return its ``T``."""
    if not isinstance(schedule, dict) or "alpha_bar" not in schedule:
        raise TypeError("schedule must be the dict returned by ddpm_schedule")
    return len(schedule["alpha_bar"]) - 1


def _check_t(t: Tensor, batch: int, T: int, name: str = "t") -> Tensor:
    if not torch.is_tensor(t) or t.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an int64 tensor of shape (B,), got {t!r:.60}")
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(
            f"{name} must have shape ({batch},) (one step per row), got {tuple(t.shape)}"
        )
    if len(t) and (t.min() < 0 or t.max() > T):
        raise ValueError(
            f"{name} must lie in 0..{T}, got values in {t.min().item()}..{t.max().item()}"
        )
    return t


def _gather(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """``values[t]`` reshaped to ``(B, 1, ..., 1)`` so it broadcasts against ``like: (B, *D)``."""
    out = values.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.view(-1, *([1] * (like.ndim - 1)))


def _randn(shape: Sequence[int], generator: torch.Generator | None, device, dtype=None) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``."""
    if generator is None:
        return torch.randn(*shape, device=device, dtype=dtype)
    return torch.randn(*shape, generator=generator, device=generator.device, dtype=dtype).to(device)


# ---------------------------------------------------------------------------------------------
# Forward process q


def q_step(x_prev: Tensor, t: Tensor, noise: Tensor, schedule: dict[str, Tensor]) -> Tensor:
    """One forward step ``x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise``.

    ``x_prev, noise: (B, *D)``, ``t: (B,)`` int64 in ``1..T``. No parameters: the forward
    process is fixed.
    """
    T = _check_schedule(schedule)
    if noise.shape != x_prev.shape:
        raise ValueError(
            f"noise must have the shape of x_prev {tuple(x_prev.shape)}, got {tuple(noise.shape)}"
        )
    t = _check_t(t, len(x_prev), T)
    beta = _gather(schedule["betas"], t, x_prev)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * noise


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, schedule: dict[str, Tensor]) -> Tensor:
    """Closed-form marginal ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise``.

    ``x0, noise: (B, *D)``; ``t: (B,)`` int64 in ``0..T`` (``t = 0`` returns ``x0``). Same law
    as ``t`` successive ``q_step`` calls, at the cost of one.
    """
    T = _check_schedule(schedule)
    if noise.shape != x0.shape:
        raise ValueError(
            f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}"
        )
    t = _check_t(t, len(x0), T)
    abar = _gather(schedule["alpha_bar"], t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def q_posterior(
    x0: Tensor, x_t: Tensor, t: Tensor, schedule: dict[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """Mean and variance of ``q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I)``.

    ``mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0
             + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t``,
    ``beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t``.
    ``x0, x_t: (B, *D)``, ``t: (B,)`` in ``1..T``; returns mean ``(B, *D)`` and variance
    ``(B, 1, ..., 1)``.
    """
    T = _check_schedule(schedule)
    if x_t.shape != x0.shape:
        raise ValueError(f"x_t must have the shape of x0 {tuple(x0.shape)}, got {tuple(x_t.shape)}")
    t = _check_t(t, len(x0), T)
    if len(t) and t.min() < 1:
        raise ValueError("t must be >= 1 for the posterior q(x_{t-1} | x_t, x_0)")
    beta = _gather(schedule["betas"], t, x0)
    alpha = _gather(schedule["alphas"], t, x0)
    abar = _gather(schedule["alpha_bar"], t, x0)
    abar_prev = _gather(schedule["alpha_bar_prev"], t, x0)
    mean = (abar_prev.sqrt() * beta * x0 + alpha.sqrt() * (1 - abar_prev) * x_t) / (1 - abar)
    return mean, _gather(schedule["posterior_var"], t, x0)


# ---------------------------------------------------------------------------------------------
# Parameterisations: eps, x0 and v


def predict_x0_from_eps(x_t: Tensor, t: Tensor, eps: Tensor, schedule: dict[str, Tensor]) -> Tensor:
    """``x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``; shapes ``(B, *D)``."""
    t = _check_t(t, len(x_t), _check_schedule(schedule))
    abar = _gather(schedule["alpha_bar"], t, x_t)
    return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()


def predict_eps_from_x0(x_t: Tensor, t: Tensor, x0: Tensor, schedule: dict[str, Tensor]) -> Tensor:
    """``eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)`` (``t >= 1``)."""
    t = _check_t(t, len(x_t), _check_schedule(schedule))
    abar = _gather(schedule["alpha_bar"], t, x_t)
    return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()


def v_target(x0: Tensor, eps: Tensor, t: Tensor, schedule: dict[str, Tensor]) -> Tensor:
    """Velocity ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0`` (Salimans & Ho 2022)."""
    t = _check_t(t, len(x0), _check_schedule(schedule))
    abar = _gather(schedule["alpha_bar"], t, x0)
    return abar.sqrt() * eps - (1 - abar).sqrt() * x0


def predict_x0_from_v(x_t: Tensor, t: Tensor, v: Tensor, schedule: dict[str, Tensor]) -> Tensor:
    """``x0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v`` (a rotation by the same angle)."""
    t = _check_t(t, len(x_t), _check_schedule(schedule))
    abar = _gather(schedule["alpha_bar"], t, x_t)
    return abar.sqrt() * x_t - (1 - abar).sqrt() * v


# ---------------------------------------------------------------------------------------------
# Denoiser


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[cos(t w_k), sin(t w_k)]``, ``w_k = max_period^(-k / (dim/2))``.

    ``t: (B,)`` integer or real time steps -> ``(B, dim)`` float32 (the Transformer position
    encoding applied to the time step; an odd ``dim`` gets a zero last column).
    """
    if not torch.is_tensor(t) or t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor of shape (B,), got {t!r:.60}")
    if not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an int >= 2, got {dim!r}")
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class EpsMLP(nn.Module):
    """Toy denoiser ``eps_theta(x_t, t)``: an MLP on ``[x_t, emb(t), cond]`` with SiLU.

    ``x: (B, dim)``, ``t: (B,)`` (int steps, or reals scaled by ``t_scale`` before the
    sinusoidal embedding, e.g. ``t_scale=1000`` for ``t`` in [0, 1]), optional
    ``cond: (B, cond_dim)``; returns ``(B, dim)``. Three hidden layers of width ``hidden``; the
    time embedding is also added to every hidden layer so each layer knows the noise level.
    """

    def __init__(
        self, dim: int = 2, hidden: int = 128, t_dim: int = 32, cond_dim: int = 0,
        t_scale: float = 1.0,
    ):  # fmt: skip
        super().__init__()
        if dim < 1 or hidden < 1 or t_dim < 2 or cond_dim < 0:
            raise ValueError(
                f"need dim >= 1, hidden >= 1, t_dim >= 2, cond_dim >= 0; got {dim}, {hidden}, "
                f"{t_dim}, {cond_dim}"
            )
        self.dim, self.t_dim, self.cond_dim, self.t_scale = dim, t_dim, cond_dim, t_scale
        self.time = nn.Sequential(nn.Linear(t_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim + cond_dim, hidden)
        self.hidden = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(2)])
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        if t.ndim == 0:
            t = t.expand(len(x))
        if t.shape != (len(x),):
            raise ValueError(f"t must have shape ({len(x)},), got {tuple(t.shape)}")
        if self.cond_dim:
            if cond is None or cond.shape != (len(x), self.cond_dim):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"cond must have shape ({len(x)}, {self.cond_dim}), got {got}")
            x = torch.cat([x, cond], dim=1)
        temb = self.time(timestep_embedding(t * self.t_scale, self.t_dim))
        h = nn.functional.silu(self.inp(x) + temb)
        for layer in self.hidden:
            h = nn.functional.silu(layer(h) + temb)
        return self.out(h)


# ---------------------------------------------------------------------------------------------
# Training


def ddpm_loss(
    eps_model: EpsModel,
    x0: Tensor,
    schedule: dict[str, Tensor],
    generator: torch.Generator | None = None,
) -> Tensor:
    """``L_simple = E_{t, x0, eps} || eps - eps_theta(x_t, t) ||^2``, ``x_t`` from ``q_sample``.

    One uniform ``t in 1..T`` and one ``eps`` per example, one call of ``eps_model``: training
    never runs the chain. ``x0: (B, *D)``; returns the scalar mean over batch and dimensions.
    """
    T = _check_schedule(schedule)
    if not torch.is_tensor(x0) or x0.ndim < 2 or not x0.is_floating_point():
        raise ValueError(f"x0 must be a float tensor of shape (B, *D), got {x0!r:.60}")
    gen_device = generator.device if generator is not None else x0.device
    t = torch.randint(1, T + 1, (len(x0),), generator=generator, device=gen_device).to(x0.device)
    noise = _randn(x0.shape, generator, x0.device, x0.dtype)
    x_t = q_sample(x0, t, noise, schedule)
    return nn.functional.mse_loss(eps_model(x_t, t), noise)


# ---------------------------------------------------------------------------------------------
# Sampling


def _model_device(eps_model: EpsModel, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(eps_model, nn.Module):
        params = next(eps_model.parameters(), None)
        if params is not None:
            return params.device
    return torch.device("cpu")


def _initial_noise(shape, x_T, generator, device) -> Tensor:
    shape = tuple(shape)
    if x_T is None:
        return _randn(shape, generator, device)
    if tuple(x_T.shape) != shape:
        raise ValueError(f"x_T must have shape {shape}, got {tuple(x_T.shape)}")
    return x_T.to(device)


@torch.no_grad()
def ddpm_sample(
    eps_model: EpsModel,
    shape: Sequence[int],
    schedule: dict[str, Tensor],
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    *,
    x_T: Tensor | None = None,
    variance: Literal["beta", "posterior"] = "beta",
    device: torch.device | str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Ancestral sampling: ``T`` sequential calls of ``eps_model``, from ``x_T ~ N(0, I)``.

    ``x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z``
    with ``sigma_t^2 = beta_t`` (``variance="beta"``) or ``beta~_t`` (``"posterior"``) and no
    noise added at the last step. ``shape = (B, *D)``. Returns ``x_0``, or with
    ``return_trajectory`` the pair ``(x_0, trajectory)`` where ``trajectory: (T + 1, B, *D)``
    holds ``x_T, ..., x_0`` (row ``i`` is ``x_{T - i}``).
    """
    T = _check_schedule(schedule)
    if variance not in ("beta", "posterior"):
        raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
    dev = _model_device(eps_model, device)
    x = _initial_noise(shape, x_T, generator, dev)
    betas = schedule["betas"].tolist()
    alphas = schedule["alphas"].tolist()
    abar = schedule["alpha_bar"].tolist()
    var = schedule["betas" if variance == "beta" else "posterior_var"].tolist()
    trajectory = [x] if return_trajectory else None
    for t in range(T, 0, -1):
        t_batch = torch.full((len(x),), t, dtype=torch.long, device=dev)
        eps = eps_model(x, t_batch)
        x = (x - betas[t] / math.sqrt(1 - abar[t]) * eps) / math.sqrt(alphas[t])
        if t > 1:
            x = x + math.sqrt(var[t]) * _randn(x.shape, generator, dev, x.dtype)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is not None:
        return x, torch.stack(trajectory)
    return x


def ddim_step(
    x_t: Tensor,
    eps: Tensor,
    abar_t: float | Tensor,
    abar_prev: float | Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One DDIM update from level ``abar_t`` to a less noisy level ``abar_prev`` (any gap).

    ``x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``,
    ``sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``,
    ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma noise``.
    ``eta = 0`` is deterministic (the probability-flow ODE, first order); ``eta = 1`` matches
    the DDPM posterior variance. ``x_t, eps, noise: (B, *D)``; ``abar_*`` scalars or tensors
    broadcastable to ``x_t``. Returns ``(x_prev, x0_hat)``.
    """
    if eps.shape != x_t.shape:
        raise ValueError(
            f"eps must have the shape of x_t {tuple(x_t.shape)}, got {tuple(eps.shape)}"
        )
    abar_t = torch.as_tensor(abar_t, dtype=x_t.dtype, device=x_t.device)
    abar_prev = torch.as_tensor(abar_prev, dtype=x_t.dtype, device=x_t.device)
    if (abar_t <= 0).any() or (abar_t > 1).any():
        raise ValueError("abar_t must lie in (0, 1]")
    if (abar_prev < abar_t).any() or (abar_prev > 1).any():
        raise ValueError("abar_prev must lie in [abar_t, 1] (a step goes towards the data)")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    x0_hat = (x_t - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()
    sigma = eta * ((1 - abar_prev) / (1 - abar_t).clamp_min(1e-20)).sqrt()
    sigma = sigma * (1 - abar_t / abar_prev).clamp_min(0).sqrt()
    x_prev = abar_prev.sqrt() * x0_hat + (1 - abar_prev - sigma**2).clamp_min(0).sqrt() * eps
    if eta > 0:
        if noise is None:
            raise ValueError("noise must be given when eta > 0 (a tensor shaped like x_t)")
        if noise.shape != x_t.shape:
            raise ValueError(
                f"noise must have the shape of x_t {tuple(x_t.shape)}, got {tuple(noise.shape)}"
            )
        x_prev = x_prev + sigma * noise
    return x_prev, x0_hat


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """``steps + 1`` decreasing time steps from ``T`` to 0, evenly spaced (DDIM's sub-sequence)."""
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in 1..T={T}, got {steps!r}")
    return torch.linspace(T, 0, steps + 1, dtype=torch.float64).round().long().tolist()


@torch.no_grad()
def ddim_sample(
    eps_model: EpsModel,
    shape: Sequence[int],
    schedule: dict[str, Tensor],
    steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    *,
    x_T: Tensor | None = None,
    return_trajectory: bool = False,
    device: torch.device | str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """DDIM sampling with ``steps`` calls of the same ``eps_model`` DDPM trained.

    Visits the time steps of ``ddim_timesteps(T, steps)`` (``T -> ... -> 0``) with
    ``ddim_step``; the last jump lands on ``abar_0 = 1``, i.e. returns ``x0_hat``. ``eta = 0``
    makes the map ``x_T -> x_0`` deterministic. Returns ``x_0`` ``(B, *D)``, or with
    ``return_trajectory`` the pair ``(x_0, trajectory: (steps + 1, B, *D))``.
    """
    T = _check_schedule(schedule)
    taus = ddim_timesteps(T, steps)
    dev = _model_device(eps_model, device)
    x = _initial_noise(shape, x_T, generator, dev)
    abar = schedule["alpha_bar"].tolist()
    trajectory = [x] if return_trajectory else None
    for t, s in zip(taus[:-1], taus[1:], strict=True):
        eps = eps_model(x, torch.full((len(x),), t, dtype=torch.long, device=dev))
        noise = _randn(x.shape, generator, dev, x.dtype) if eta > 0 else None
        x, _ = ddim_step(x, eps, abar[t], abar[s], eta=eta, noise=noise)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is not None:
        return x, torch.stack(trajectory)
    return x
