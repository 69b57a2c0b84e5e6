"""Convolution from scratch: the definition, the sliding window, im2col, sizes and counts.

Two operations share the name "convolution":

- true convolution flips the kernel, ``(f * g)[n] = sum_k f[k] g[n - k]``;
- cross-correlation does not, ``(I ⋆ K)[i, j] = sum_{m,n} I[i + m, j + n] K[m, n]``, and is what
  ``torch.nn.functional.conv2d`` (and every deep-learning framework) computes.

``corr2d`` and ``conv2d_naive`` are loop references that show the definition (small inputs
only); ``im2col`` + ``conv2d_im2col`` are the vectorised "unfold the patches, one matmul" form.
Kernels run on whatever device their inputs are on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = [
    "bilinear_kernel",
    "check_equivariance",
    "conv1d_full",
    "conv2d_im2col",
    "conv2d_naive",
    "conv_as_matrix",
    "conv_output_size",
    "conv_params",
    "conv_transpose2d",
    "conv_transpose_output_size",
    "corr2d",
    "dense_equivalent_params",
    "empirical_receptive_field",
    "global_pool",
    "im2col",
    "pool2d",
    "pool_output_size",
    "receptive_field",
    "receptive_field_support",
    "trans_conv",
    "unit_conv_stack",
]

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """``3 -> (3, 3)``; check that both entries are ints >= ``minimum``."""
    pair = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    pair = (pair[0], pair[1])
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _positive_int(value: int, name: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def conv_output_size(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``floor((n + 2p - d(k - 1) - 1) / s) + 1``: the dilated kernel spans ``d(k - 1) + 1`` input
    pixels, and a window that would stick out past the (padded) border is dropped, hence the
    floor. Raises ``ValueError`` when the dilated kernel does not fit even once.
    """
    n = _positive_int(n, "n")
    k = _positive_int(k, "k")
    stride = _positive_int(stride, "stride")
    padding = _positive_int(padding, "padding", minimum=0)
    dilation = _positive_int(dilation, "dilation")
    span = dilation * (k - 1) + 1
    if n + 2 * padding < span:
        raise ValueError(
            f"the dilated kernel (k={k}, dilation={dilation} spans {span} pixels) does not fit in "
            f"n + 2 * padding = {n + 2 * padding}"
        )
    return (n + 2 * padding - span) // stride + 1


def conv_params(c_in: int, c_out: int, k: IntPair, groups: int = 1, bias: bool = True) -> int:
    """Parameters of ``nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)``.

    ``c_out * (c_in / groups) * k_h * k_w + c_out`` (the last term only with a bias): each of
    the ``c_out`` kernels has shape ``(c_in / groups, k_h, k_w)``. The image size never appears.
    """
    c_in, c_out = _positive_int(c_in, "c_in"), _positive_int(c_out, "c_out")
    groups = _positive_int(groups, "groups")
    kh, kw = _pair(k, "k", 1)
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    return c_out * (c_in // groups) * kh * kw + (c_out if bias else 0)


def dense_equivalent_params(
    c_in: int, h_in: int, w_in: int, c_out: int, h_out: int, w_out: int, bias: bool = True
) -> int:
    """Parameters of the dense layer with the conv layer's input and output shapes.

    ``(c_in h_in w_in) (c_out h_out w_out) + c_out h_out w_out``: every output unit sees every
    input value, with its own weights and bias.
    """
    sizes = {"c_in": c_in, "h_in": h_in, "w_in": w_in, "c_out": c_out, "h_out": h_out,
             "w_out": w_out}  # fmt: skip
    for name, value in sizes.items():
        _positive_int(value, name)
    n_in, n_out = c_in * h_in * w_in, c_out * h_out * w_out
    return n_in * n_out + (n_out if bias else 0)


def conv1d_full(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """True 1-D convolution from the definition, ``(f * g)[n] = sum_k f[k] g[n - k]``.

    ``f: (L_f,)``, ``g: (L_g,)`` -> ``(L_f + L_g - 1,)`` ("full" mode, like ``np.convolve``).
    All products ``f[k] g[n - k]`` are formed in one ``(L_f + L_g - 1, L_f)`` table; entries
    where ``n - k`` falls outside ``g`` count as zero.
    """
    for name, t in (("f", f), ("g", g)):
        if not torch.is_tensor(t) or t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor (L,)")
    if f.device != g.device:
        raise ValueError(f"f and g must be on one device, got {f.device} and {g.device}")
    dtype = torch.promote_types(f.dtype, g.dtype)
    n = torch.arange(len(f) + len(g) - 1, device=f.device)[:, None]
    k = torch.arange(len(f), device=f.device)[None, :]
    shift = n - k  # index into g for every (n, k)
    valid = (shift >= 0) & (shift < len(g))
    g_shifted = torch.where(valid, g.to(dtype)[shift.clamp(0, len(g) - 1)], 0)
    return (f.to(dtype)[None, :] * g_shifted).sum(dim=1)


def corr2d(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Single-channel "valid" cross-correlation with two loops (a reference; small inputs).

    ``x: (H, W)``, ``k: (k_h, k_w)`` -> ``(H - k_h + 1, W - k_w + 1)`` with
    ``y[i, j] = sum_{m,n} x[i + m, j + n] k[m, n]``.
    """
    if not torch.is_tensor(x) or x.ndim != 2:
        raise ValueError("x must be a 2-D tensor (H, W)")
    if not torch.is_tensor(k) or k.ndim != 2:
        raise ValueError("k must be a 2-D tensor (k_h, k_w)")
    kh, kw = k.shape
    if kh > x.shape[0] or kw > x.shape[1] or kh * kw == 0:
        raise ValueError(f"k {tuple(k.shape)} must be non-empty and fit in x {tuple(x.shape)}")
    out = x.new_zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (x[i : i + kh, j : j + kw] * k).sum()
    return out


def _check_conv_args(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, groups: int
) -> tuple[int, int]:
    """Validate ``x: (N, C_in, H, W)``, ``w: (C_out, C_in/groups, k_h, k_w)``, ``b: (C_out,)``."""
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError("x must be a 4-D tensor (N, C_in, H, W)")
    if not torch.is_tensor(w) or w.ndim != 4:
        raise ValueError("w must be a 4-D tensor (C_out, C_in / groups, k_h, k_w)")
    groups = _positive_int(groups, "groups")
    c_in, c_out = x.shape[1], w.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in} and C_out={c_out}")
    if w.shape[1] != c_in // groups:
        raise ValueError(
            f"w must have shape (C_out, C_in / groups = {c_in // groups}, k_h, k_w), "
            f"got {tuple(w.shape)}"
        )
    if b is not None and (not torch.is_tensor(b) or b.shape != (c_out,)):
        raise ValueError(f"b must be None or a tensor of shape (C_out,) = ({c_out},)")
    if x.device != w.device:
        raise ValueError(f"x and w must be on one device, got {x.device} and {w.device}")
    return c_in, c_out


def conv2d_naive(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d`` written as a loop over output pixels (a reference; small inputs).

    ``x: (N, C_in, H, W)``, ``w: (C_out, C_in/g, k_h, k_w)``, ``b: (C_out,)`` ->
    ``(N, C_out, H', W')``, zero padding. Output channel ``o`` of group ``g`` sees only that
    group's input channels:
    ``y[:, o, i, j] = b[o] + sum_{c,m,n} x_pad[:, c, s i + d m, s j + d n] w[o, c, m, n]``.
    """
    c_in, c_out = _check_conv_args(x, w, b, groups)
    (sh, sw), (ph, pw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    kh, kw = w.shape[-2:]
    out_h = conv_output_size(x.shape[2], kh, sh, ph, dh)
    out_w = conv_output_size(x.shape[3], kw, sw, pw, dw)
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    c_in_g, c_out_g = c_in // groups, c_out // groups
    y = x.new_zeros(x.shape[0], c_out, out_h, out_w, dtype=torch.promote_types(x.dtype, w.dtype))
    for g in range(groups):
        xg = xp[:, g * c_in_g : (g + 1) * c_in_g]
        wg = w[g * c_out_g : (g + 1) * c_out_g]
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
                patch = xg[:, :, rows, cols]  # (N, C_in/g, k_h, k_w)
                y[:, g * c_out_g : (g + 1) * c_out_g, i, j] = torch.einsum(
                    "bcpq,ocpq->bo", patch, wg
                )
    return y if b is None else y + b.view(1, -1, 1, 1)


def im2col(
    x: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """All kernel-sized patches as columns, like ``F.unfold``.

    ``x: (N, C, H, W)`` -> ``(N, C k_h k_w, L)`` with ``L = H' W'`` (output pixels in row-major
    order). Row ``(c, m, n)`` of column ``(i, j)`` holds ``x_pad[c, s i + d m, s j + d n]``:
    the row index of every patch entry is ``s i + d m``, built once as a ``(k_h, H')`` table.
    """
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError("x must be a 4-D tensor (N, C, H, W)")
    (kh, kw), (sh, sw) = _pair(kernel_size, "kernel_size", 1), _pair(stride, "stride", 1)
    (ph, pw), (dh, dw) = _pair(padding, "padding", 0), _pair(dilation, "dilation", 1)
    n, c, h, w = x.shape
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(w, kw, sw, pw, dw)
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    rows = dh * torch.arange(kh, device=x.device)[:, None] + sh * torch.arange(
        out_h, device=x.device
    )  # (k_h, H')
    cols = dw * torch.arange(kw, device=x.device)[:, None] + sw * torch.arange(
        out_w, device=x.device
    )  # (k_w, W')
    patches = xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (N, C, k_h, k_w, H', W')
    return patches.reshape(n, c * kh * kw, out_h * out_w)


def conv2d_im2col(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d`` as unfold + one (batched) matrix multiply.

    ``x: (N, C_in, H, W)``, ``w: (C_out, C_in/g, k_h, k_w)``, ``b: (C_out,)`` ->
    ``(N, C_out, H', W')``. With ``cols = im2col(x): (N, C_in k_h k_w, L)`` split into ``g``
    groups and ``w`` flattened to ``(g, C_out/g, C_in/g k_h k_w)``, ``y = w @ cols + b``:
    ``O(C_out (C_in/g) k_h k_w H' W')`` multiply-adds per image.
    """
    c_in, c_out = _check_conv_args(x, w, b, groups)
    kh, kw = w.shape[-2:]
    (sh, sw), (ph, pw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    out_h = conv_output_size(x.shape[2], kh, sh, ph, dh)
    out_w = conv_output_size(x.shape[3], kw, sw, pw, dw)
    cols = im2col(x, (kh, kw), stride, padding, dilation)  # (N, C_in k_h k_w, L)
    cols = cols.view(x.shape[0], groups, c_in // groups * kh * kw, out_h * out_w)  # (N, g, ., L)
    wg = w.reshape(groups, c_out // groups, -1)  # (g, C_out/g, C_in/g k_h k_w)
    y = torch.einsum("gok,ngkl->ngol", wg, cols).reshape(x.shape[0], c_out, out_h, out_w)
    return y if b is None else y + b.view(1, -1, 1, 1)


def check_equivariance(
    f: Callable[[torch.Tensor], torch.Tensor],
    t_in: Callable[[torch.Tensor], torch.Tensor],
    t_out: Callable[[torch.Tensor], torch.Tensor] | None,
    x: torch.Tensor,
    atol: float = 1e-5,
) -> bool:
    """Whether ``f(t_in(x)) ≈ t_out(f(x))`` (equivariance); ``t_out=None`` tests invariance.

    Invariance is the special case ``t_out = identity``: ``f(t_in(x)) ≈ f(x)``. Close means
    ``|a - b| <= atol + 1e-5 |b|`` everywhere; different shapes count as not equivariant.
    """
    if not callable(f) or not callable(t_in) or (t_out is not None and not callable(t_out)):
        raise TypeError("f, t_in and t_out must be callables (t_out may be None)")
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if atol < 0:
        raise ValueError(f"atol must be >= 0, got {atol}")
    with torch.no_grad():
        fx = f(x)
        lhs = f(t_in(x))
        rhs = fx if t_out is None else t_out(fx)
    if lhs.shape != rhs.shape:
        return False
    return bool(torch.allclose(lhs, rhs, rtol=1e-5, atol=atol))


# =============================================================================================
# Chapter 3.2: pooling and receptive fields
# =============================================================================================


def pool_output_size(n: int, k: int, stride: int | None = None, padding: int = 0) -> int:
    """Output length of a pooling window along one axis: ``floor((n + 2p - k) / s) + 1``.

    The stride defaults to the window size ``k`` (a convolution's default stride is 1), so
    ``nn.MaxPool2d(2)`` halves the size. The floor drops a last window that would stick out.
    """
    k = _positive_int(k, "k")
    stride = k if stride is None else _positive_int(stride, "stride")
    return conv_output_size(n, k, stride, padding)


def pool2d(
    x: torch.Tensor,
    k: int,
    stride: int | None = None,
    padding: int = 0,
    mode: str = "max",
) -> torch.Tensor:
    """Max or average pooling of every channel on its own, like ``F.max_pool2d``/``F.avg_pool2d``.

    ``x: (N, C, H, W)`` or ``(C, H, W)`` -> ``(N, C, H', W')`` with
    ``H' = floor((H + 2p - k) / s) + 1`` and ``s = k`` by default.

    - ``mode="max"``: ``y[i, j] = max_{(m, n) in R_ij} x[s i + m - p, s j + n - p]``; the padding
      is ``-inf`` so it never wins.
    - ``mode="avg"``: ``y[i, j] = (1 / k^2) sum_{(m, n) in R_ij} x[...]``; the padding is zero
      and counts in the ``k^2`` (PyTorch's ``count_include_pad=True``).

    No parameters, and the channel count is unchanged. As in PyTorch, ``padding`` may be at most
    ``k // 2``. All windows are gathered at once (``im2col``) and reduced; autograd gives the
    backward pass: the max routes each output's gradient to one input, the mean spreads it.
    """
    if not torch.is_tensor(x) or x.ndim not in (3, 4) or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating-point (N, C, H, W) or (C, H, W) tensor, got "
            f"{getattr(x, 'shape', type(x).__name__)}"
        )
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    k = _positive_int(k, "k")
    stride = k if stride is None else _positive_int(stride, "stride")
    padding = _positive_int(padding, "padding", minimum=0)
    if padding > k // 2:
        raise ValueError(f"padding must be at most k // 2 = {k // 2}, got {padding}")
    squeeze = x.ndim == 3
    x4 = x.unsqueeze(0) if squeeze else x
    n, c, h, w = x4.shape
    out_h, out_w = pool_output_size(h, k, stride, padding), pool_output_size(w, k, stride, padding)
    fill = float("-inf") if mode == "max" else 0.0
    xp = torch.nn.functional.pad(x4, (padding,) * 4, value=fill)
    windows = im2col(xp.reshape(n * c, 1, *xp.shape[-2:]), k, stride)  # (N C, k k, H' W')
    y = windows.amax(dim=1) if mode == "max" else windows.mean(dim=1)
    y = y.reshape(n, c, out_h, out_w)
    return y[0] if squeeze else y


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Receptive field of a stack of conv/pool layers given as ``(k, s, d)`` per layer.

    ``r_0 = 1``, ``r_l = r_{l-1} + (k_l - 1) d_l S_{l-1}`` with ``S_{l-1} = prod_{j < l} s_j``,
    the product of the strides *before* layer ``l`` (the spacing, in input pixels, of that
    layer's input grid). Padding does not change it.
    """
    if (
        isinstance(layers, tuple | list)
        and len(layers) == 3
        and all(isinstance(v, int) for v in layers)
    ):
        raise TypeError("layers must be a list of (k, s, d) tuples, e.g. [(3, 1, 1)]")
    r, jump = 1, 1
    for i, layer in enumerate(layers):
        if not isinstance(layer, tuple | list) or len(layer) != 3:
            raise ValueError(f"layers[{i}] must be a (k, s, d) tuple, got {layer!r}")
        k, s, d = (_positive_int(v, f"layers[{i}]") for v in layer)
        r += (k - 1) * d * jump
        jump *= s
    return r


def receptive_field_support(
    net: Callable[[torch.Tensor], torch.Tensor],
    in_shape: tuple[int, ...],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``|d y_centre / d x|`` summed over input channels: the input pixels the centre output uses.

    ``in_shape = (C, H, W)``; returns ``(H, W)``. With a random input ``x: (1, C, H, W)`` (drawn
    with ``generator``), ``y_centre = y[0, :, H'//2, W'//2].sum()`` for ``y = net(x)``. For a
    linear net without cancellations the map is non-zero exactly on the receptive field of the
    centre pixel; a max-pool passes the gradient to one input per window only.
    """
    if not callable(net):
        raise TypeError(f"net must be callable (an nn.Module), got {type(net).__name__}")
    if (
        not isinstance(in_shape, tuple | list)
        or len(in_shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in in_shape)
    ):
        raise ValueError(f"in_shape must be (C, H, W) with positive ints, got {in_shape!r}")
    params = list(net.parameters()) if isinstance(net, torch.nn.Module) else []
    ref = params[0] if params else torch.empty(0)
    x = torch.randn(1, *in_shape, generator=generator, dtype=ref.dtype).to(ref.device)
    x.requires_grad_(True)
    y = net(x)
    if not torch.is_tensor(y) or y.ndim != 4:
        raise ValueError("net must map (1, C, H, W) to a 4-D feature map (1, C', H', W')")
    (grad,) = torch.autograd.grad(y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum(), x)
    return grad[0].abs().sum(dim=0).detach()


def empirical_receptive_field(
    net: Callable[[torch.Tensor], torch.Tensor],
    in_shape: tuple[int, ...],
    generator: torch.Generator | None = None,
) -> int:
    """Receptive field measured by autograd: the larger side of the bounding box of the non-zero
    ``receptive_field_support(net, in_shape)``; 0 when the gradient is zero everywhere.

    ``in_shape = (C, H, W)`` must be large enough that the support does not touch the border.
    A max-pool routes the gradient to one input per window, so the measured support can be
    smaller than the true receptive field.
    """
    support = receptive_field_support(net, in_shape, generator) > 0  # (H, W)
    rows, cols = support.any(dim=1).nonzero(), support.any(dim=0).nonzero()
    if len(rows) == 0:
        return 0
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))


def unit_conv_stack(
    layers: Sequence[tuple[int, int, int]], pool: str | None = None, padding: int = 0
) -> torch.nn.Sequential:
    """Single-channel conv layers with all weights 1 and no bias, one per ``(k, s, d)``.

    A probe for receptive fields: every path from input to output has a positive weight, so the
    gradient cannot cancel. With ``pool="avg"`` or ``"max"`` every ``(2, 2, 1)`` entry becomes a
    2x2 pooling layer instead of a conv; ``padding`` is given to every conv.
    """
    if pool not in (None, "avg", "max"):
        raise ValueError(f"pool must be None, 'avg' or 'max', got {pool!r}")
    receptive_field(layers)  # validates layers
    modules: list[torch.nn.Module] = []
    for k, s, d in layers:
        if pool is not None and (k, s, d) == (2, 2, 1):
            modules.append(torch.nn.AvgPool2d(2) if pool == "avg" else torch.nn.MaxPool2d(2))
        else:
            modules.append(
                torch.nn.Conv2d(1, 1, k, stride=s, padding=padding, dilation=d, bias=False)
            )
    net = torch.nn.Sequential(*modules)
    with torch.no_grad():
        for module in net:
            if isinstance(module, torch.nn.Conv2d):
                module.weight.fill_(1.0)
    return net


# =============================================================================================
# Chapter 3.3: global pooling (GAP / GMP) over spatial or time axes, with an optional mask
# =============================================================================================


def global_pool(
    x: torch.Tensor, mode: str = "avg", mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Pool every axis after the channel axis away: ``x: (N, C, *S) -> (N, C)``.

    - ``mode="avg"`` (GAP): :math:`\\frac{1}{|S|}\\sum_{s \\in S} x_{n,c,s}`, a mean, not a sum;
    - ``mode="max"`` (GMP): :math:`\\max_{s \\in S} x_{n,c,s}`.

    ``S`` is ``(H, W)`` for images or ``(T,)`` for sequences. With ``mask: (N, *S)`` (bool,
    ``True`` = a real position) only real positions count, so a zero-padded batch pools each
    item exactly as it would be pooled alone; every item needs at least one real position.
    """
    if not torch.is_tensor(x) or x.ndim < 3:
        raise ValueError(f"x must be a tensor (N, C, *spatial) with ndim >= 3, got {x!r:.60}")
    if mode not in ("avg", "max"):
        raise ValueError(f"mode must be 'avg' or 'max', got {mode!r}")
    dims = tuple(range(2, x.ndim))
    if mask is None:
        return x.mean(dim=dims) if mode == "avg" else x.amax(dim=dims)
    if mask.dtype != torch.bool or mask.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(
            f"mask must be a bool tensor of shape {(x.shape[0], *x.shape[2:])}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    keep = mask.unsqueeze(1)
    if not keep.flatten(1).any(dim=1).all():
        raise ValueError("mask must keep at least one position of every item")
    if mode == "avg":
        total = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dims)
        return total / keep.sum(dims).to(x.dtype)
    return x.masked_fill(~keep, float("-inf")).amax(dim=dims)


# ---------------------------------------------------------------------------------------------
# Chapter 3.6: transposed convolution (scatter-add, output size, the matrix C and its transpose,
# bilinear upsampling kernels)


def conv_transpose_output_size(
    n: int, k: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a transposed convolution along one axis.

    ``(n - 1) s - 2p + d(k - 1) + output_padding + 1``; with ``d = 1`` and no output padding,
    ``(n - 1) s - 2p + k``. Each of the ``n`` inputs scatters a kernel of span ``d(k - 1) + 1``
    at a step of ``s``; ``padding`` then removes ``p`` rows at each end of that full output, and
    ``output_padding`` (``< max(s, d)``, as in PyTorch) adds rows at the far end. It undoes the
    floor of :func:`conv_output_size`: a convolution with the same ``k, s, p, d`` maps the result
    back to ``n``.
    """
    n = _positive_int(n, "n")
    k = _positive_int(k, "k")
    stride = _positive_int(stride, "stride")
    padding = _positive_int(padding, "padding", minimum=0)
    output_padding = _positive_int(output_padding, "output_padding", minimum=0)
    dilation = _positive_int(dilation, "dilation")
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding must be smaller than stride or dilation, got output_padding="
            f"{output_padding} with stride={stride}, dilation={dilation}"
        )
    size = (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    if size < 1:
        raise ValueError(
            f"padding={padding} removes the whole output (n={n}, k={k}, stride={stride}, "
            f"dilation={dilation} give {size + 2 * padding} rows before cropping)"
        )
    return size


def trans_conv(x: torch.Tensor, k: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Single-channel transposed convolution by scatter-add (a reference; small inputs).

    ``x: (H, W)``, ``k: (k_h, k_w)`` -> ``((H-1)s - 2p + k_h, (W-1)s - 2p + k_w)``. Every input
    pixel adds a copy of the kernel scaled by its value at offset ``(s i, s j)`` of the full
    output, ``Y[s i : s i + k_h, s j : s j + k_w] += x[i, j] K``; ``padding`` then crops ``p``
    rows and columns from every side. Equals ``F.conv_transpose2d(x[None, None], k[None, None])``.
    """
    if not torch.is_tensor(x) or x.ndim != 2 or x.numel() == 0:
        raise ValueError("x must be a non-empty 2-D tensor (H, W)")
    if not torch.is_tensor(k) or k.ndim != 2 or k.numel() == 0:
        raise ValueError("k must be a non-empty 2-D tensor (k_h, k_w)")
    if x.device != k.device:
        raise ValueError(f"x and k must be on one device, got {x.device} and {k.device}")
    stride = _positive_int(stride, "stride")
    padding = _positive_int(padding, "padding", minimum=0)
    (h, w), (kh, kw) = x.shape, k.shape
    out_h = conv_transpose_output_size(h, kh, stride, padding)
    out_w = conv_transpose_output_size(w, kw, stride, padding)
    dtype = torch.promote_types(x.dtype, k.dtype)
    full = x.new_zeros((h - 1) * stride + kh, (w - 1) * stride + kw, dtype=dtype)
    for i in range(h):
        for j in range(w):
            full[i * stride : i * stride + kh, j * stride : j * stride + kw] += x[i, j] * k
    return full[padding : padding + out_h, padding : padding + out_w]


def conv_transpose2d(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """``F.conv_transpose2d`` as one vectorised scatter-add (same argument order).

    ``x: (N, C_in, H, W)``, ``w: (C_in, C_out/g, k_h, k_w)`` (note: input channels first),
    ``b: (C_out,)`` -> ``(N, C_out, H', W')`` with ``H'`` from
    :func:`conv_transpose_output_size`. Input pixel ``(i, j)`` of channel ``c`` adds
    ``x[c, i, j] w[c, o, m, n]`` to output ``(s i + d m - p, s j + d n - p)`` of every output
    channel ``o`` of its group; contributions that land outside ``[0, H')`` are dropped.
    """
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError("x must be a 4-D tensor (N, C_in, H, W)")
    if not torch.is_tensor(w) or w.ndim != 4:
        raise ValueError("w must be a 4-D tensor (C_in, C_out / groups, k_h, k_w)")
    groups = _positive_int(groups, "groups")
    n, c_in, h, width = x.shape
    if w.shape[0] != c_in:
        raise ValueError(
            f"w must have shape (C_in = {c_in}, C_out / groups, k_h, k_w) (input channels "
            f"first), got {tuple(w.shape)}"
        )
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in}")
    c_out = w.shape[1] * groups
    if b is not None and (not torch.is_tensor(b) or b.shape != (c_out,)):
        raise ValueError(f"b must be None or a tensor of shape (C_out,) = ({c_out},)")
    if x.device != w.device:
        raise ValueError(f"x and w must be on one device, got {x.device} and {w.device}")
    (sh, sw), (ph, pw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    (oh, ow), (dh, dw) = _pair(output_padding, "output_padding", 0), _pair(dilation, "dilation", 1)
    kh, kw = w.shape[-2:]
    out_h = conv_transpose_output_size(h, kh, sh, ph, oh, dh)
    out_w = conv_transpose_output_size(width, kw, sw, pw, ow, dw)
    g, cg, og = groups, c_in // groups, w.shape[1]
    dtype = torch.promote_types(x.dtype, w.dtype)
    xg = x.to(dtype).reshape(n, g, cg, h * width)
    wg = w.to(dtype).reshape(g, cg, og, kh * kw)
    contrib = torch.einsum("ngcl,gcot->ngotl", xg, wg).reshape(n, c_out, kh, kw, h, width)
    dev = x.device
    rows = sh * torch.arange(h, device=dev) + dh * torch.arange(kh, device=dev)[:, None] - ph
    cols = sw * torch.arange(width, device=dev) + dw * torch.arange(kw, device=dev)[:, None] - pw
    rows, cols = rows[:, None, :, None], cols[None, :, None, :]  # (k_h, 1, H, 1), (1, k_w, 1, W)
    inside = (rows >= 0) & (rows < out_h) & (cols >= 0) & (cols < out_w)  # (k_h, k_w, H, W)
    target = (rows * out_w + cols)[inside]  # flat output index of every kept contribution
    y = x.new_zeros(n, c_out, out_h * out_w, dtype=dtype)
    y.index_add_(2, target, contrib[:, :, inside])
    y = y.view(n, c_out, out_h, out_w)
    return y if b is None else y + b.view(1, -1, 1, 1).to(dtype)


def conv_as_matrix(
    w: torch.Tensor,
    in_hw: tuple[int, int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """The dense matrix ``C`` of a convolution (no bias): ``vec(conv2d(x, w)) = C vec(x)``.

    ``w: (C_out, C_in/g, k_h, k_w)`` or a single-channel kernel ``(k_h, k_w)``;
    ``in_hw = (H, W)``. Returns ``C: (C_out H' W', C_in H W)`` whose column ``j`` is the
    convolution of the ``j``-th unit image (vectors in row-major ``(C, H, W)`` order). Its
    transpose is the transposed convolution: ``C^T vec(y) = vec(conv_transpose2d(y, w))``
    with the same ``stride, padding, dilation, groups``. Built by pushing all ``C_in H W`` unit
    images through :func:`conv2d_im2col` as one batch; small sizes only (the matrix is dense).
    """
    if torch.is_tensor(w) and w.ndim == 2:
        w = w[None, None]
    if not torch.is_tensor(w) or w.ndim != 4:
        raise ValueError("w must be a (k_h, k_w) or a 4-D (C_out, C_in / groups, k_h, k_w) tensor")
    h, width = _pair(tuple(in_hw) if isinstance(in_hw, list) else in_hw, "in_hw", 1)
    groups = _positive_int(groups, "groups")
    c_in = w.shape[1] * groups
    basis = torch.eye(c_in * h * width, dtype=w.dtype, device=w.device)
    images = conv2d_im2col(
        basis.view(-1, c_in, h, width), w, None, stride, padding, dilation, groups
    )
    return images.reshape(c_in * h * width, -1).T


def bilinear_kernel(c_in: int, c_out: int, k: int) -> torch.Tensor:
    """Weights ``(c_in, c_out, k, k)`` that make ``ConvTranspose2d`` a bilinear upsampler.

    The kernel is the outer product of a 1-D tent, ``t[i] = 1 - |i - c| / f`` with
    ``f = ceil(k / 2)`` and centre ``c = f - 1`` (odd ``k``) or ``f - 1/2`` (even ``k``), placed
    on the diagonal ``w[c, c]`` (each channel upsampled on its own, so ``c_in == c_out``). With
    ``k = 2 s``, ``stride = s`` and ``padding = s / 2`` (even ``s``) it reproduces
    ``F.interpolate(scale_factor=s, mode="bilinear", align_corners=False)`` away from the border;
    the FCN paper's ``x32`` layer is ``k = 64, s = 32, p = 16``.
    """
    c_in, c_out, k = (
        _positive_int(c_in, "c_in"),
        _positive_int(c_out, "c_out"),
        _positive_int(k, "k"),
    )
    if c_in != c_out:
        raise ValueError(
            f"bilinear upsampling maps each channel to itself: c_in ({c_in}) must equal "
            f"c_out ({c_out})"
        )
    factor = (k + 1) // 2
    centre = factor - 1 if k % 2 == 1 else factor - 0.5
    tent = 1 - (torch.arange(k, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(c_in, c_out, k, k)
    channels = torch.arange(c_in)
    weight[channels, channels] = tent[:, None] * tent[None, :]
    return weight
