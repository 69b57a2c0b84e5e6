"""State-space models from scratch: discretisation, the recurrent, convolutional and scan views,
Mamba's selective scan and Mamba-2's state-space duality (SSD).

Continuous time: ``h'(t) = A h(t) + B x(t)``, ``y(t) = C h(t) + D x(t)``. Discrete (step
``Delta``): ``h_t = A_bar h_{t-1} + B_bar x_t``, ``y_t = C h_t + D x_t``.

Shapes: a sequence batch is ``x: (B, L, H)`` (batch, length, channels); every channel ``h`` is
its own single-input single-output SSM with an ``N``-dimensional state, as in S4/S4D/Mamba:
``A_bar: (H, N)`` (diagonal) or ``(H, N, N)`` (dense), ``B_bar, C: (H, N)``, ``D: (H,)``.

- ``discretize_zoh``: zero-order hold ``(A, B, Delta) -> (A_bar, B_bar)``.
- ``ssm_recurrent`` / ``ssm_conv_kernel`` + ``causal_conv1d_fft``: the two views of an LTI SSM.
- ``associative_scan``: ``h_t = a_t h_{t-1} + b_t`` in ``log2(L)`` parallel steps.
- ``selective_scan``: Mamba-1's input-dependent ``(Delta_t, B_t, C_t)``.
- ``segsum``, ``ssd_recurrent``, ``ssd_quadratic``, ``ssd_chunked``: Mamba-2 (scalar ``A``).
- ``LTISSMLayer``, ``SelectiveSSMLayer``: small trainable layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LTISSMLayer",
    "SelectiveSSMLayer",
    "associative_scan",
    "causal_conv1d_fft",
    "discretize_zoh",
    "segsum",
    "selective_scan",
    "ssd_chunked",
    "ssd_quadratic",
    "ssd_recurrent",
    "ssm_conv_kernel",
    "ssm_recurrent",
]


def _require_float(t: object, name: str, ndim: int | tuple[int, ...], shape: str) -> torch.Tensor:
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if not torch.is_tensor(t) or not t.is_floating_point() or t.ndim not in ndims:
        got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
        raise ValueError(f"{name} must be a floating-point tensor {shape}, got {got}")
    return t


def discretize_zoh(
    A: torch.Tensor,
    B: torch.Tensor,
    delta: torch.Tensor | float,
    diagonal: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order hold: ``A_bar = exp(Delta A)``, ``B_bar = (Delta A)^{-1} (exp(Delta A) - I) Delta B``.

    Holding ``x`` constant over a step of length ``Delta`` and integrating the ODE exactly.
    Diagonal: ``A: (..., N)`` (the diagonal), ``B`` broadcastable to it, ``delta`` a number or a
    tensor broadcastable to it; entries with ``A = 0`` get the limit ``B_bar = Delta B``.
    Dense: ``A: (..., N, N)``, ``B: (..., N)`` or ``(..., N, M)``, ``delta`` a number or
    ``(...)``; computed as the top-right block of ``exp(Delta [[A, B], [0, 0]])``, which needs no
    inverse and so also works for a singular ``A``. ``diagonal=None`` treats a square ``A``
    (last two dimensions equal) as dense and anything else as diagonal; say ``diagonal=True``
    for a stack of diagonals ``(H, N)`` with ``H = N``.
    """
    if not torch.is_tensor(A) or not A.is_floating_point() or A.ndim < 1:
        raise ValueError("A must be a floating-point tensor: (..., N) diagonal or (..., N, N)")
    if not torch.is_tensor(B) or not B.is_floating_point():
        raise ValueError("B must be a floating-point tensor")
    delta_t = torch.as_tensor(delta, dtype=A.dtype, device=A.device)
    if (delta_t <= 0).any():
        raise ValueError("delta must be positive (a step length)")
    if diagonal is None:
        diagonal = A.ndim < 2 or A.shape[-1] != A.shape[-2]
    if diagonal:
        dA = delta_t * A
        small = dA.abs() < 1e-12
        ratio = torch.where(small, torch.ones_like(dA), torch.expm1(dA) / torch.where(small, 1, dA))
        return torch.exp(dA), ratio * delta_t * B
    n = A.shape[-1]
    Bm = B[..., None] if B.ndim == A.ndim - 1 else B
    if Bm.shape[-2] != n:
        raise ValueError(f"B must be (..., N={n}) or (..., N, M) for a dense A (..., N, N)")
    m = Bm.shape[-1]
    batch = torch.broadcast_shapes(A.shape[:-2], Bm.shape[:-2], delta_t.shape)
    block = torch.zeros(*batch, n + m, n + m, dtype=A.dtype, device=A.device)
    block[..., :n, :n] = A
    block[..., :n, n:] = Bm
    expo = torch.linalg.matrix_exp(delta_t[..., None, None] * block)
    B_bar = expo[..., :n, n:]
    return expo[..., :n, :n], B_bar[..., 0] if B.ndim == A.ndim - 1 else B_bar


def _check_lti(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor) -> tuple[int, int, bool]:
    _require_float(A_bar, "A_bar", (2, 3), "(H, N) diagonal or (H, N, N) dense")
    h, n = A_bar.shape[:2]
    dense = A_bar.ndim == 3
    if dense and A_bar.shape[2] != n:
        raise ValueError(f"A_bar must be (H, N, N) when dense, got {tuple(A_bar.shape)}")
    for name, t in (("B_bar", B_bar), ("C", C)):
        if _require_float(t, name, 2, f"(H={h}, N={n})").shape != (h, n):
            raise ValueError(f"{name} must be (H={h}, N={n}), got {tuple(t.shape)}")
    return h, n, dense


def ssm_recurrent(
    x: torch.Tensor,
    A_bar: torch.Tensor,
    B_bar: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
) -> torch.Tensor:
    """Recurrent view, one step at a time: ``h_t = A_bar h_{t-1} + B_bar x_t``, ``y_t = C h_t + D x_t``.

    ``x: (B, L, H)``; ``A_bar: (H, N)`` diagonal or ``(H, N, N)`` dense; ``B_bar, C: (H, N)``;
    ``D: (H,)``. Returns ``y: (B, L, H)``. ``O(1)`` work per new token with a state of ``H N``
    numbers: how an SSM generates text. A reference loop over time.
    """
    h_dim, n, dense = _check_lti(A_bar, B_bar, C)
    if _require_float(x, "x", 3, f"(B, L, H={h_dim})").shape[-1] != h_dim:
        raise ValueError(f"x must be (B, L, H={h_dim}), got {tuple(x.shape)}")
    h = torch.zeros(x.shape[0], h_dim, n, dtype=x.dtype, device=x.device)
    ys = []
    for t in range(x.shape[1]):
        decay = (A_bar @ h[..., None])[..., 0] if dense else A_bar * h
        h = decay + B_bar * x[:, t, :, None]
        ys.append((C * h).sum(-1))
    y = torch.stack(ys, dim=1)
    return y if D is None else y + D * x


def ssm_conv_kernel(
    A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, L: int
) -> torch.Tensor:
    """Convolution kernel ``K_bar = (C B_bar, C A_bar B_bar, ..., C A_bar^{L-1} B_bar)``: ``(H, L)``.

    Unrolling the recurrence from ``h_{-1} = 0`` gives ``y_t = sum_{s<=t} K_bar[t-s] x_s``: an
    LTI SSM is a causal convolution whose kernel spans the whole sequence.
    """
    h_dim, n, dense = _check_lti(A_bar, B_bar, C)
    if not isinstance(L, int) or isinstance(L, bool) or L < 1:
        raise ValueError(f"L must be a positive int, got {L!r}")
    if not dense:  # C A^l B = sum_n C_n A_n^l B_n: a Vandermonde product
        powers = A_bar[..., None] ** torch.arange(L, device=A_bar.device, dtype=A_bar.dtype)
        return torch.einsum("hn,hnl->hl", C * B_bar, powers)
    cols, v = [], B_bar
    for _ in range(L):
        cols.append((C * v).sum(-1))
        v = (A_bar @ v[..., None])[..., 0]
    return torch.stack(cols, dim=-1)


def causal_conv1d_fft(x: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``y_t = sum_{s<=t} K[t-s] x_s`` per channel in ``O(L log L)`` with the FFT.

    ``x: (B, L, H)``, ``K: (H, L_K)`` -> ``(B, L, H)``. Zero-padding both signals to ``2L``
    turns the FFT's circular convolution into a linear one, of which the first ``L`` outputs
    are the causal part.
    """
    _require_float(x, "x", 3, "(B, L, H)")
    if _require_float(K, "K", 2, "(H, L_K)").shape[0] != x.shape[-1]:
        raise ValueError(f"K must be (H={x.shape[-1]}, L_K), got {tuple(K.shape)}")
    L = x.shape[1]
    size = 2 * max(L, K.shape[-1])
    xf = torch.fft.rfft(x.transpose(1, 2), n=size)  # (B, H, size/2+1)
    kf = torch.fft.rfft(K, n=size)
    return torch.fft.irfft(xf * kf, n=size)[..., :L].transpose(1, 2)


def associative_scan(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """All ``h_t = a_t h_{t-1} + b_t`` (``h_{-1} = 0``) along ``dim`` in ``ceil(log2 L)`` steps.

    The pairs ``(a, b)`` compose associatively, ``(a_2, b_2) o (a_1, b_1) = (a_2 a_1,
    a_2 b_1 + b_2)``, so a Hillis-Steele scan combines each element with the one ``1, 2, 4,
    ...`` places before it; every step is one vectorised tensor operation (``O(L log L)`` work;
    Blelloch's version does ``O(L)``). ``a`` and ``b`` broadcast to a common shape.
    """
    if not torch.is_tensor(a) or not torch.is_tensor(b):
        raise TypeError("a and b must be tensors")
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must broadcast") from None
    if not shape:
        raise ValueError("a and b need at least one dimension (the time axis)")
    a, b = a.expand(shape), b.expand(shape)
    dim = dim % len(shape)
    L, offset = shape[dim], 1
    while offset < L:
        a_prev = torch.cat(
            [torch.ones_like(a.narrow(dim, 0, offset)), a.narrow(dim, 0, L - offset)], dim
        )
        b_prev = torch.cat(
            [torch.zeros_like(b.narrow(dim, 0, offset)), b.narrow(dim, 0, L - offset)], dim
        )
        a, b = a * a_prev, b + a * b_prev
        offset *= 2
    return b


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mamba-1's selective SSM (reference): ``(Delta_t, B_t, C_t)`` depend on the token.

    ``h_t = exp(Delta_t A) * h_{t-1} + Delta_t B_t u_t``, ``y_t = C_t . h_t + D u_t``, per
    channel, with ``u, delta: (b, L, d)``, ``A: (d, N)`` (diagonal, fixed: only
    ``A_bar_t = exp(Delta_t A)`` varies), ``B, C: (b, L, N)``, ``D: (d,)``. ``B_bar`` uses the
    simplified (Euler) rule ``Delta B`` of Mamba's reference code. No convolution kernel exists
    (the system is time-varying), so the linear recurrence runs as an ``associative_scan``.
    Returns ``y: (b, L, d)``; memory ``b L d N`` (the fused kernel keeps that in SRAM).
    """
    _require_float(u, "u", 3, "(b, L, d)")
    bsz, L, d = u.shape
    if _require_float(delta, "delta", 3, "(b, L, d)").shape != u.shape:
        raise ValueError(f"delta must be (b, L, d) = {tuple(u.shape)}, got {tuple(delta.shape)}")
    if _require_float(A, "A", 2, f"(d={d}, N)").shape[0] != d:
        raise ValueError(f"A must be (d={d}, N), got {tuple(A.shape)}")
    n = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if _require_float(t, name, 3, f"(b, L, N={n})").shape != (bsz, L, n):
            raise ValueError(f"{name} must be (b, L, N) = ({bsz}, {L}, {n}), got {tuple(t.shape)}")
    A_bar = torch.exp(delta[..., None] * A)  # (b, L, d, N)
    Bu = (delta * u)[..., None] * B[:, :, None, :]  # (b, L, d, N)
    h = associative_scan(A_bar, Bu, dim=1)
    y = (h * C[:, :, None, :]).sum(-1)
    return y if D is None else y + D * u


def segsum(x: torch.Tensor) -> torch.Tensor:
    """Segment sums ``S[..., i, j] = x_{j+1} + ... + x_i`` for ``i >= j``, ``-inf`` above.

    ``x: (..., T)`` -> ``(..., T, T)``; ``exp(segsum(log a))`` is the decay matrix
    ``L_ij = a_{j+1} ... a_i`` of Mamba-2 (1 on the diagonal, 0 above). Built from masked
    cumulative sums, not as a difference of two cumsums, to avoid cancellation.
    """
    _require_float(x, "x", tuple(range(1, 8)), "(..., T)")
    T = x.shape[-1]
    strict = torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1)
    X = x[..., :, None].expand(*x.shape, T).masked_fill(~strict, 0.0)  # X[k, j] = x_k if k > j
    S = X.cumsum(dim=-2)
    return S.masked_fill(~strict.logical_or(torch.eye(T, dtype=torch.bool, device=x.device)),
                         float("-inf"))  # fmt: skip


def _check_ssd(x, dt, A, B, C) -> None:
    _require_float(x, "x", 4, "(b, L, h, p)")
    b, L, h, _ = x.shape
    if _require_float(dt, "dt", 3, "(b, L, h)").shape != (b, L, h):
        raise ValueError(f"dt must be (b, L, h) = ({b}, {L}, {h}), got {tuple(dt.shape)}")
    if _require_float(A, "A", 1, "(h,)").shape != (h,):
        raise ValueError(f"A must be (h={h},), one scalar per head, got {tuple(A.shape)}")
    for name, t in (("B", B), ("C", C)):
        if _require_float(t, name, 4, "(b, L, h, n)").shape[:3] != (b, L, h):
            raise ValueError(f"{name} must be (b, L, h, n) with b, L, h = {(b, L, h)}")
    if B.shape != C.shape:
        raise ValueError(
            f"B and C must have the same shape, got {tuple(B.shape)}, {tuple(C.shape)}"
        )


def ssd_recurrent(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> torch.Tensor:
    """Mamba-2 (SSD) as a recurrence: ``H_t = a_t H_{t-1} + B_t (dt_t x_t)^T``, ``y_t = H_t^T C_t``.

    ``a_t = exp(dt_t A)`` is a *scalar* per head (``A = a I``). Shapes: ``x: (b, L, h, p)``,
    ``dt: (b, L, h)``, ``A: (h,)`` (negative), ``B, C: (b, L, h, n)``; state ``H: (b, h, n, p)``;
    returns ``y: (b, L, h, p)``. A reference loop over time.
    """
    _check_ssd(x, dt, A, B, C)
    b, L, h, p = x.shape
    state = torch.zeros(b, h, B.shape[-1], p, dtype=x.dtype, device=x.device)
    a = torch.exp(dt * A)  # (b, L, h)
    ys = []
    for t in range(L):
        inp = B[:, t, :, :, None] * (dt[:, t, :, None] * x[:, t])[:, :, None, :]
        state = a[:, t, :, None, None] * state + inp
        ys.append((state * C[:, t, :, :, None]).sum(-2))
    return torch.stack(ys, dim=1)


def ssd_quadratic(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> torch.Tensor:
    """Mamba-2's dual, attention-like form: ``Y = (L o C B^T) (dt * X)`` per head.

    ``L_ij = a_{j+1} ... a_i = exp(segsum(dt A))_ij`` for ``i >= j`` and 0 above: causal
    masked linear attention (``C`` plays the query, ``B`` the key, ``dt x`` the value) with a
    decay. ``O(L^2)`` but all matrix products. Shapes as in ``ssd_recurrent``.
    """
    _check_ssd(x, dt, A, B, C)
    Lmat = torch.exp(segsum((dt * A).transpose(1, 2)))  # (b, h, L, L)
    scores = torch.einsum("bihn,bjhn->bhij", C, B)
    return torch.einsum("bhij,bjhp->bihp", Lmat * scores, dt[..., None] * x)


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int = 16,
) -> torch.Tensor:
    """Mamba-2's chunked algorithm: quadratic inside chunks, a short recurrence between them.

    Split the sequence into chunks of ``Q = chunk_size`` (``L`` must be a multiple). (1) inside
    each chunk, the quadratic form; (2) each chunk's final state from its own inputs; (3) a
    recurrence over the ``L/Q`` chunk states (decay = product of the chunk's ``a``); (4) the
    contribution of the incoming state to each output. ``O(L Q)`` work in matrix products.
    Shapes as in ``ssd_recurrent``.
    """
    _check_ssd(x, dt, A, B, C)
    if not isinstance(chunk_size, int) or chunk_size < 1 or x.shape[1] % chunk_size:
        raise ValueError(
            f"chunk_size must be a positive divisor of L={x.shape[1]}, got {chunk_size!r}"
        )
    b, L, h, p = x.shape
    c, Q = L // chunk_size, chunk_size
    X = (dt[..., None] * x).reshape(b, c, Q, h, p)
    Bc, Cc = B.reshape(b, c, Q, h, -1), C.reshape(b, c, Q, h, -1)
    log_a = (dt * A).reshape(b, c, Q, h).permute(0, 3, 1, 2)  # (b, h, c, Q)
    cum = log_a.cumsum(-1)
    # (1) diagonal blocks: attention-like form inside each chunk
    Lmat = torch.exp(segsum(log_a))  # (b, h, c, Q, Q)
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Cc, Bc, Lmat, X)
    # (2) state at the end of each chunk from that chunk's inputs alone
    decay_to_end = torch.exp(cum[..., -1:] - cum)  # (b, h, c, Q)
    states = torch.einsum("bclhn,bhcl,bclhp->bchnp", Bc, decay_to_end, X)
    # (3) recurrence across chunks: state entering chunk z
    zero = torch.zeros_like(states[:, :1])
    states = torch.cat([zero, states], dim=1)  # (b, c+1, h, n, p)
    chunk_decay = torch.exp(segsum(F.pad(cum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    entering = torch.einsum("bhzc,bchnp->bzhnp", chunk_decay, states)[:, :-1]
    # (4) incoming state, decayed to each position, read out by C
    y_off = torch.einsum("bclhn,bchnp,bhcl->bclhp", Cc, entering, torch.exp(cum))
    return (y_diag + y_off).reshape(b, L, h, p)


class _DiagonalSSM(nn.Module):
    """What both SSM layers share: ``d_model`` channels, each with a diagonal
    ``A = -exp(log_A)`` of ``d_state`` entries (initialised ``-(1, 2, ..., N)``) and a skip ``D``."""

    def __init__(self, d_model: int, d_state: int = 16):
        super().__init__()
        for name, value in (("d_model", d_model), ("d_state", d_state)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.d_model, self.d_state = d_model, d_state
        n = torch.arange(1, d_state + 1, dtype=torch.float32)
        self.log_A = nn.Parameter(n.log().repeat(d_model, 1))
        self.D = nn.Parameter(torch.ones(d_model))

    def _check_input(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (batch, L, d_model={self.d_model}), got {x!r:.60}")


class LTISSMLayer(_DiagonalSSM):
    """A diagonal, linear time-invariant SSM layer (S4D-Real style), run as an FFT convolution.

    Per channel: ``A = -exp(log_A)`` (initialised ``-(1, 2, ..., N)``), ``B``, ``C``, ``D`` and a
    step ``Delta = exp(log_dt)`` (log-uniform in ``[1e-3, 1e-1]``); ZOH, then
    ``y = K_bar * x + D x``. ``forward(x (batch, L, d_model)) -> (batch, L, d_model)``. The map
    ``x -> y`` is linear and the same at every time step.
    """

    def __init__(self, d_model: int, d_state: int = 16):
        super().__init__(d_model, d_state)
        self.B = nn.Parameter(torch.ones(d_model, d_state))
        self.C = nn.Parameter(torch.randn(d_model, d_state) / math.sqrt(d_state))
        lo, hi = math.log(1e-3), math.log(1e-1)
        self.log_dt = nn.Parameter(lo + (hi - lo) * torch.rand(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        A_bar, B_bar = discretize_zoh(
            -self.log_A.exp(), self.B, self.log_dt.exp()[:, None], diagonal=True
        )
        K = ssm_conv_kernel(A_bar, B_bar, self.C, x.shape[1])
        return causal_conv1d_fft(x, K) + self.D * x


class SelectiveSSMLayer(_DiagonalSSM):
    """Mamba's selective SSM layer (without its convolution, gate and block around it).

    ``Delta_t = softplus(W_Delta x_t + b)``, ``B_t = W_B x_t``, ``C_t = W_C x_t`` (``N`` each), a
    fixed diagonal ``A = -exp(log_A)`` per channel; then ``selective_scan``.
    ``forward(x (batch, L, d_model)) -> (batch, L, d_model)``. The recurrence stays linear in
    ``h``, but the weights given to each token now depend on the token.
    """

    def __init__(self, d_model: int, d_state: int = 16):
        super().__init__(d_model, d_state)
        self.to_delta = nn.Linear(d_model, d_model)
        self.to_B = nn.Linear(d_model, d_state, bias=False)
        self.to_C = nn.Linear(d_model, d_state, bias=False)
        lo, hi = math.log(1e-3), math.log(1e-1)
        dt = torch.exp(lo + (hi - lo) * torch.rand(d_model))
        with torch.no_grad():  # softplus(bias) = dt at initialisation (inverse softplus)
            self.to_delta.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        delta = F.softplus(self.to_delta(x))
        return selective_scan(x, delta, -self.log_A.exp(), self.to_B(x), self.to_C(x), self.D)
