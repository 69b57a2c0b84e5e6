"""Layers with hand-written backward passes: a network as a chain of vector-Jacobian products.

Every module has ``forward(x)``, which keeps what its backward pass will need, and
``backward(grad_out)``, which receives dL/d(output) and returns dL/d(input) (a VJP,
:math:`J^\\top g`), storing the gradients of its own parameters on the way. ``params()`` and
``grads()`` list parameters and gradients in the same order, for a hand-written SGD step::

    for p, g in zip(net.params(), net.grads()):
        p -= lr * g

``dot_product_test`` checks any such backward against its forward:
:math:`\\langle g, J v\\rangle = \\langle J^\\top g, v\\rangle` for random ``g`` and ``v``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from .losses import cross_entropy, stable_softmax

__all__ = [
    "BatchNormScratch",
    "INIT_SCHEMES",
    "LeNet5",
    "MLP",
    "ManualLinear",
    "ManualModule",
    "ManualReLU",
    "ManualSequential",
    "ManualSoftmaxCE",
    "ResidualBlock",
    "ResidualMLP",
    "SimpleCNN",
    "activation_stats",
    "batch_norm",
    "count_linear_pieces",
    "dot_product_test",
    "elu",
    "gelu",
    "init_module",
    "inverted_dropout",
    "is_psd",
    "layer_norm",
    "leaky_relu",
    "mish",
    "perceptron_train",
    "poly2_features",
    "poly_kernel",
    "prelu",
    "rbf_kernel",
    "relu",
    "rms_norm",
    "selu",
    "sigmoid",
    "softplus",
    "swish",
    "tanh",
    "tent_map_net",
]


class ManualModule:
    """Base class: no parameters, ``__call__`` runs ``forward``."""

    param_names: tuple[str, ...] = ()

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        return self.forward(*args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def params(self) -> list[torch.Tensor]:
        return []

    def grads(self) -> list[torch.Tensor]:
        return []

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move the parameters (and their gradients) in place; returns ``self``."""
        return self


class ManualLinear(ManualModule):
    """:math:`y = x W^\\top + b` with ``W: (out_f, in_f)``, ``b: (out_f,)``; ``x: (B, in_f)``.

    Backward, with ``G = dL/dy: (B, out_f)``: ``dW = G^T x``, ``db = sum_n G[n]``,
    ``dL/dx = G W``. Initialised like ``torch.nn.Linear``: uniform on
    :math:`[-1/\\sqrt{in_f}, 1/\\sqrt{in_f}]`.
    """

    param_names = ("W", "b")

    def __init__(
        self,
        in_f: int,
        out_f: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        for name, value in (("in_f", in_f), ("out_f", out_f)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        bound = 1.0 / math.sqrt(in_f)
        self.W = (2 * torch.rand(out_f, in_f, generator=generator, dtype=dtype) - 1) * bound
        self.b = (2 * torch.rand(out_f, generator=generator, dtype=dtype) - 1) * bound
        self.dW = torch.zeros_like(self.W)
        self.db = torch.zeros_like(self.b)
        self.x: torch.Tensor | None = None
        self.to(device)

    def __repr__(self) -> str:
        return f"ManualLinear(in_f={self.W.shape[1]}, out_f={self.W.shape[0]})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.W.shape[1]:
            raise ValueError(f"x must be (B, {self.W.shape[1]}), got {tuple(x.shape)}")
        self.x = x  # saved for dW = G^T x
        return x @ self.W.T + self.b

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        if self.x is None:
            raise RuntimeError("call forward before backward")
        if grad_out.shape != (self.x.shape[0], self.W.shape[0]):
            raise ValueError(
                f"grad_out must be (B, out_f) = {(self.x.shape[0], self.W.shape[0])}, "
                f"got {tuple(grad_out.shape)}"
            )
        self.dW = grad_out.T @ self.x
        self.db = grad_out.sum(dim=0)
        return grad_out @ self.W

    def params(self) -> list[torch.Tensor]:
        return [self.W, self.b]

    def grads(self) -> list[torch.Tensor]:
        return [self.dW, self.db]

    def to(self, device=None, dtype=None) -> ManualLinear:
        for name in ("W", "b", "dW", "db"):
            setattr(self, name, getattr(self, name).to(device=device, dtype=dtype))
        return self


class ManualReLU(ManualModule):
    """:math:`\\max(x, 0)` elementwise; backward multiplies by the mask :math:`1[x > 0]`.

    The derivative at exactly 0 is 0, the same convention as PyTorch.
    """

    def __init__(self):
        self.mask: torch.Tensor | None = None

    def __repr__(self) -> str:
        return "ManualReLU()"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.mask = x > 0  # one bit per activation is all the backward pass needs
        return x * self.mask

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            raise RuntimeError("call forward before backward")
        if grad_out.shape != self.mask.shape:
            raise ValueError(
                f"grad_out must have the input's shape {tuple(self.mask.shape)}, "
                f"got {tuple(grad_out.shape)}"
            )
        return grad_out * self.mask


class ManualSoftmaxCE(ManualModule):
    """Mean cross-entropy of ``logits: (B, C)`` against class indices ``y: (B,)``.

    ``forward(logits, y)`` returns the scalar loss; ``backward(grad_out=1.0)`` returns
    :math:`\\partial L/\\partial z = (\\hat p - \\mathrm{onehot}(y)) / B`, times ``grad_out``.
    """

    def __init__(self):
        self.probs: torch.Tensor | None = None
        self.y: torch.Tensor | None = None

    def __repr__(self) -> str:
        return "ManualSoftmaxCE()"

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2:
            raise ValueError(f"logits must be (B, C), got {tuple(logits.shape)}")
        if y.dtype != torch.int64 or y.shape != logits.shape[:1]:
            raise ValueError(
                f"y must be int64 class indices of shape ({logits.shape[0]},), "
                f"got {y.dtype} {tuple(y.shape)}"
            )
        self.probs, self.y = stable_softmax(logits, dim=1), y
        return cross_entropy(logits, y)

    def backward(self, grad_out: torch.Tensor | float = 1.0) -> torch.Tensor:
        if self.probs is None or self.y is None:
            raise RuntimeError("call forward before backward")
        grad = self.probs.clone()
        grad[torch.arange(len(self.y), device=grad.device), self.y] -= 1.0  # p - onehot(y)
        return grad * (grad_out / len(self.y))


class ManualSequential(ManualModule):
    """Layers applied in order; ``backward`` runs their VJPs in reverse order."""

    def __init__(self, *layers: ManualModule):
        if not layers:
            raise ValueError("layers must contain at least one module")
        for i, layer in enumerate(layers):
            if not isinstance(layer, ManualModule):
                raise TypeError(f"layers[{i}] must be a ManualModule, got {type(layer).__name__}")
        self.layers = list(layers)

    def __repr__(self) -> str:
        return "ManualSequential(" + ", ".join(map(repr, self.layers)) + ")"

    def __getitem__(self, i: int) -> ManualModule:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(f"{i}.{n}" for i, layer in enumerate(self.layers) for n in layer.param_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def params(self) -> list[torch.Tensor]:
        return [p for layer in self.layers for p in layer.params()]

    def grads(self) -> list[torch.Tensor]:
        return [g for layer in self.layers for g in layer.grads()]

    def to(self, device=None, dtype=None) -> ManualSequential:
        for layer in self.layers:
            layer.to(device=device, dtype=dtype)
        return self


def dot_product_test(
    layer: ManualModule,
    x: torch.Tensor,
    *args: torch.Tensor,
    generator: torch.Generator | None = None,
    eps: float = 1e-6,
) -> dict[str, tuple[float, float]]:
    """Compare :math:`\\langle g, J v\\rangle` with :math:`\\langle J^\\top g, v\\rangle`.

    ``g`` (shaped like the output) and ``v`` (shaped like ``x`` or like a parameter) are random
    normal; ``J^T g`` comes from ``layer.backward(g)`` (and the stored parameter gradients),
    ``J v`` from central differences of ``layer.forward`` along ``v``. Returns
    ``{"x": (lhs, rhs), "<param name>": (lhs, rhs), ...}``; each pair agrees to ~1e-9 relative
    when the backward is right. Use float64 layers and inputs. ``args`` go to ``forward`` after
    ``x`` (e.g. the labels of ``ManualSoftmaxCE``).
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError("x must be a floating-point tensor")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")

    def randn_like(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)

    out = layer.forward(x, *args)
    g = randn_like(out)
    grad_x = layer.backward(g)
    param_grads = [p.clone() for p in layer.grads()]

    v = randn_like(x)
    jv = (layer.forward(x + eps * v, *args) - layer.forward(x - eps * v, *args)) / (2 * eps)
    results = {"x": ((g * jv).sum().item(), (grad_x * v).sum().item())}
    names = layer.param_names or tuple(f"param{i}" for i in range(len(param_grads)))
    for name, p, grad_p in zip(names, layer.params(), param_grads, strict=True):
        v, saved = randn_like(p), p.clone()
        p += eps * v
        plus = layer.forward(x, *args)
        p.copy_(saved - eps * v)
        minus = layer.forward(x, *args)
        p.copy_(saved)
        jv = (plus - minus) / (2 * eps)
        results[name] = ((g * jv).sum().item(), (grad_p * v).sum().item())
    return results


# =============================================================================================
# Chapter 1.6: initialization schemes and the activation statistics of deep networks
# =============================================================================================

INIT_SCHEMES = (
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_normal",
    "orthogonal",
    "zeros",
    "constant",
)
# the keyword arguments each scheme accepts, with their defaults
_INIT_KWARGS: dict[str, dict[str, object]] = {
    "normal": {"mean": 0.0, "std": 0.01},
    "xavier_uniform": {"gain": 1.0},
    "xavier_normal": {"gain": 1.0},
    "kaiming_uniform": {"a": 0.0, "mode": "fan_in", "nonlinearity": "relu"},
    "kaiming_normal": {"a": 0.0, "mode": "fan_in", "nonlinearity": "relu"},
    "lecun_normal": {},
    "orthogonal": {"gain": 1.0},
    "zeros": {},
    "constant": {"value": None},
}


def _init_weight_(
    w: torch.Tensor, scheme: str, kw: dict[str, object], generator: torch.Generator | None
) -> None:
    from torch import nn

    if scheme == "normal":
        nn.init.normal_(w, mean=kw["mean"], std=kw["std"], generator=generator)
    elif scheme == "xavier_uniform":
        nn.init.xavier_uniform_(w, gain=kw["gain"], generator=generator)
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(w, gain=kw["gain"], generator=generator)
    elif scheme in ("kaiming_uniform", "kaiming_normal"):
        init = nn.init.kaiming_uniform_ if scheme == "kaiming_uniform" else nn.init.kaiming_normal_
        init(w, a=kw["a"], mode=kw["mode"], nonlinearity=kw["nonlinearity"], generator=generator)
    elif scheme == "lecun_normal":
        fan_in = w[0].numel()  # in_features (Linear) or in_channels / groups * kernel size (Conv)
        nn.init.normal_(w, std=1.0 / math.sqrt(fan_in), generator=generator)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(w, gain=kw["gain"], generator=generator)
    elif scheme == "zeros":
        nn.init.zeros_(w)
    else:  # constant
        nn.init.constant_(w, kw["value"])


def init_module(
    m: torch.nn.Module,
    scheme: str,
    *,
    bias: float = 0.0,
    generator: torch.Generator | None = None,
    **kw: object,
) -> None:
    """Re-initialize, in place and under ``torch.no_grad()``, every Linear and Conv in ``m``.

    Weight ``W: (out, in)`` for Linear, ``(out, in / groups, *kernel)`` for Conv, so
    ``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``. Schemes (std
    :math:`\\sigma` of the weights):

    - ``"normal"``: :math:`\\mathcal N(\\text{mean}, \\text{std}^2)`, default ``std=0.01``;
    - ``"xavier_uniform"`` / ``"xavier_normal"``: :math:`\\sigma^2 = \\text{gain}^2 \\cdot
      2/(\\text{fan\\_in}+\\text{fan\\_out})` (uniform bound :math:`\\sqrt{3}\\sigma`);
    - ``"kaiming_uniform"`` / ``"kaiming_normal"``: :math:`\\sigma^2 = 2/\\text{fan}` for
      ReLU, with ``mode="fan_in"`` (default, preserves the forward pass) or ``"fan_out"``
      (preserves the backward pass); ``a`` and ``nonlinearity`` as in ``torch.nn.init``;
    - ``"lecun_normal"``: :math:`\\sigma^2 = 1/\\text{fan\\_in}` (for SELU);
    - ``"orthogonal"``: a (semi-)orthogonal matrix times ``gain``;
    - ``"zeros"``, ``"constant"`` (needs ``value=``): no randomness, so no symmetry breaking.

    Biases are set to the constant ``bias`` (default 0). ``generator`` makes the draw
    reproducible without touching the global random state (it may live on another device than
    the model: the draw is copied over). Layers that are not Linear or Conv
    (norms, embeddings, recurrent cells) are left as they are.
    """
    from torch import nn

    if not isinstance(m, nn.Module):
        raise TypeError(f"m must be a torch.nn.Module, got {type(m).__name__}")
    if scheme not in _INIT_KWARGS:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    unknown = set(kw) - set(_INIT_KWARGS[scheme])
    if unknown:
        allowed = sorted(_INIT_KWARGS[scheme]) or "none"
        raise TypeError(
            f"scheme={scheme!r} does not take {sorted(unknown)}; its keyword arguments: {allowed}"
        )
    options = {**_INIT_KWARGS[scheme], **kw}
    if scheme == "constant" and not isinstance(options["value"], int | float):
        raise ValueError("scheme='constant' needs a number value=..., e.g. value=0.1")
    if scheme == "normal" and not float(options["std"]) >= 0:
        raise ValueError(f"std must be >= 0, got {options['std']}")
    layers = (nn.Linear, nn.modules.conv._ConvNd)
    with torch.no_grad():
        for module in m.modules():
            if not isinstance(module, layers):
                continue
            weight = module.weight
            if generator is not None and generator.device != weight.device:
                # draw where the generator lives (a CPU generator for a GPU model), then copy
                draw = torch.empty_like(weight, device=generator.device)
                _init_weight_(draw, scheme, options, generator)
                weight.copy_(draw)
            else:
                _init_weight_(weight, scheme, options, generator)
            if module.bias is not None:
                module.bias.fill_(bias)


def activation_stats(
    depth: int,
    width: int,
    init: str,
    act=torch.relu,
    n: int = 512,
    seed: int = 0,
    **init_kw: object,
) -> list[float]:
    """Std of the activations after each layer of a freshly initialized deep MLP.

    The network is ``depth`` blocks ``h <- act(h W_l^T)`` with ``W_l: (width, width)`` drawn by
    ``init_module(..., init, **init_kw)`` and zero biases; the input ``h_0: (n, width)`` is
    standard normal. Returns ``[std(h_1), ..., std(h_depth)]`` (over all ``n * width``
    entries). With :math:`\\mathrm{Var}[o] = n_{in}\\sigma^2\\mathrm{Var}[h]` per layer, the std
    stays of order one only when :math:`\\sigma^2` matches the activation (``2/width`` for
    ReLU). Computed in float64 so that vanishing values are measured, not rounded to zero.
    """
    from torch import nn

    for name, value in (("depth", depth), ("width", width), ("n", n)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not callable(act):
        raise TypeError(f"act must be callable (e.g. torch.relu), got {type(act).__name__}")
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(n, width, generator=generator, dtype=torch.float64)
    layer = nn.utils.skip_init(nn.Linear, width, width, bias=False, dtype=torch.float64)
    stds = []
    with torch.no_grad():
        for _ in range(depth):
            init_module(layer, init, generator=generator, **init_kw)
            h = act(layer(h))
            stds.append(h.std().item())
    return stds


# Chapter 1.4: activations from scratch, the book's MLP, perceptron, piecewise-linear networks,
# explicit feature maps and kernels.
# =============================================================================================


# The constants of Klambauer et al. (2017), to the precision PyTorch uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _check_float(x: torch.Tensor, name: str = "x") -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\sigma(x) = 1/(1+e^{-x})`, elementwise, any shape.

    No exponential overflows: :math:`1/(1+e^{-x})` for :math:`x\\ge0` and
    :math:`e^{x}/(1+e^{x})` for :math:`x<0`.
    Derivative :math:`\\sigma(1-\\sigma)\\le 1/4`.
    """
    _check_float(x)
    # each branch only sees inputs of its own sign (clamp, not abs: autograd's d|x|/dx at 0 is 0)
    pos, neg = x.clamp_min(0.0), x.clamp_max(0.0)
    return torch.where(
        x >= 0, 1.0 / (1.0 + torch.exp(-pos)), torch.exp(neg) / (1.0 + torch.exp(neg))
    )


def tanh(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\tanh x = (e^{x}-e^{-x})/(e^{x}+e^{-x}) = 2\\sigma(2x)-1`, elementwise.

    Zero-centred, range (-1, 1); derivative :math:`1-\\tanh^2 x\\le 1`.
    """
    _check_float(x)
    # tanh x = -expm1(-2x) / (2 + expm1(-2x)) for x >= 0, and the mirror image for x < 0:
    # expm1 keeps full relative precision near 0, and no exponential can overflow
    e_pos, e_neg = torch.expm1(-2.0 * x.clamp_min(0.0)), torch.expm1(2.0 * x.clamp_max(0.0))
    return torch.where(x >= 0, -e_pos / (2.0 + e_pos), e_neg / (2.0 + e_neg))


def relu(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\max(0, x)` elementwise; its autograd derivative at 0 is 0, as in PyTorch."""
    _check_float(x)
    return torch.where(x > 0, x, torch.zeros_like(x))


def leaky_relu(x: torch.Tensor, alpha: float = 0.01) -> torch.Tensor:
    """:math:`x` for :math:`x>0`, :math:`\\alpha x` otherwise (:math:`=\\max(\\alpha x, x)` for
    :math:`0\\le\\alpha\\le1`). A small slope for negative inputs keeps every unit alive."""
    _check_float(x)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return torch.where(x > 0, x, alpha * x)


def prelu(x: torch.Tensor, a: torch.Tensor | float) -> torch.Tensor:
    """Parametric ReLU :math:`\\max(0,x) + a\\min(0,x)` with a learnable slope ``a``.

    ``a`` is a scalar (one slope shared by all units) or a tensor of shape ``(C,)``, one slope
    per channel, where the channels are dimension 1 of ``x: (B, C, ...)`` (as ``F.prelu``).
    """
    _check_float(x)
    a = torch.as_tensor(a, dtype=x.dtype, device=x.device)
    if a.numel() > 1:
        if a.ndim != 1 or x.ndim < 2 or x.shape[1] != a.numel():
            raise ValueError(
                f"a must be a scalar or of shape (C,) with C = x.shape[1]; got a of shape "
                f"{tuple(a.shape)} for x of shape {tuple(x.shape)}"
            )
        a = a.reshape(1, -1, *([1] * (x.ndim - 2)))
    return torch.where(x > 0, x, a * x)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """:math:`x` for :math:`x>0`, :math:`\\alpha(e^{x}-1)` otherwise; smooth negative saturation
    at :math:`-\\alpha`. ``expm1`` sees only :math:`\\min(x,0)`, so large inputs cannot overflow
    (an ``inf`` in the unused branch of ``where`` would turn its gradient into NaN)."""
    _check_float(x)
    return torch.where(x > 0, x, alpha * torch.expm1(x.clamp_max(0.0)))


def selu(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\lambda\\,\\mathrm{ELU}_\\alpha(x)` with :math:`\\lambda\\approx1.0507`,
    :math:`\\alpha\\approx1.6733`: the fixed point of the layer-to-layer map of mean 0 and
    variance 1 for LeCun-normal weights (self-normalizing networks, Klambauer et al. 2017)."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\ln(1+e^{x}) = \\max(x,0) + \\ln(1+e^{-|x|})`, a smooth ReLU; derivative
    :math:`\\sigma(x)`. No exponential of a positive number is taken, so nothing overflows."""
    _check_float(x)
    pos, neg = x.clamp_min(0.0), x.clamp_max(0.0)
    return torch.where(x > 0, pos + torch.log1p(torch.exp(-pos)), torch.log1p(torch.exp(neg)))


def swish(x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """:math:`x\\,\\sigma(\\beta x)` (Ramachandran et al. 2017); :math:`\\beta=1` is SiLU.

    :math:`\\beta\\to\\infty` gives ReLU, :math:`\\beta=0` gives :math:`x/2`.
    """
    return x * sigmoid(beta * x)


def mish(x: torch.Tensor) -> torch.Tensor:
    """:math:`x\\tanh(\\ln(1+e^{x}))` (Misra 2019)."""
    return x * tanh(softplus(x))


def gelu(x: torch.Tensor, approximate: Literal["none", "tanh"] = "none") -> torch.Tensor:
    """Gaussian error linear unit :math:`x\\,\\Phi(x) = \\tfrac x2(1+\\mathrm{erf}(x/\\sqrt2))`.

    ``approximate="tanh"``: :math:`\\tfrac x2\\big(1+\\tanh(\\sqrt{2/\\pi}(x+0.044715x^3))\\big)`
    (Hendrycks & Gimpel 2016; the form used in BERT and GPT-2).
    """
    _check_float(x)
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + tanh(inner))
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def _norm_layer(norm: Literal[None, "batch", "layer"], width: int) -> nn.Module:
    """``BatchNorm1d``, ``LayerNorm`` or ``Identity`` (``norm=None``) for ``width`` features."""
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class MLP(nn.Module):
    """The book's standard multilayer perceptron: hidden blocks, then a *linear* output layer.

    Each hidden block is ``Linear -> [BatchNorm1d | LayerNorm] -> act() -> [Dropout]``, so
    :math:`h_l = \\phi(W_l h_{l-1} + b_l)`; the output layer is ``Linear`` with no activation
    (logits for a classifier, values for a regressor). ``x: (B, in_dim)`` ->
    ``(B, out_dim)``. ``features(x)`` returns the last hidden representation ``(B, hidden[-1])``
    (the input itself when ``hidden`` is empty). Parameter count without norm layers:
    :math:`\\sum_l (d_{l-1}d_l + d_l)`.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        act: type[nn.Module] = nn.ReLU,
        norm: Literal[None, "batch", "layer"] = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        hidden = list(hidden)
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive ints, got {hidden!r}")
        if norm not in (None, "batch", "layer"):
            raise ValueError(f"norm must be None, 'batch' or 'layer', got {norm!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not (isinstance(act, type) and issubclass(act, nn.Module)):
            raise TypeError(f"act must be an nn.Module class such as nn.ReLU, got {act!r}")
        blocks: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            block: list[nn.Module] = [nn.Linear(width, h)]
            if norm is not None:
                block.append(_norm_layer(norm, h))
            block.append(act())
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            blocks.append(nn.Sequential(*block))
            width = h
        self.hidden = nn.Sequential(*blocks)
        self.out = nn.Linear(width, out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output, ``(B, hidden[-1])``: the learned representation."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must be (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.hidden(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))

    @property
    def in_dim(self) -> int:
        first = self.hidden[0][0] if len(self.hidden) else self.out
        return first.in_features


def perceptron_train(
    X: torch.Tensor, y: torch.Tensor, epochs: int = 20, lr: float = 1.0
) -> tuple[torch.Tensor, float, list[float]]:
    """Rosenblatt's perceptron rule on ``X: (N, D)`` with labels ``y: (N,)`` in {0, 1}.

    Prediction :math:`\\hat y = 1[w^\\top x + b > 0]`; for each example in order, update
    :math:`w \\leftarrow w + \\eta(y-\\hat y)x`, :math:`b \\leftarrow b + \\eta(y-\\hat y)`
    (a change only on mistakes). Starts from zero. Returns ``(w: (D,), b, accuracies)``, the
    accuracy on the whole set after each epoch. The loop over examples is the algorithm itself
    (each update depends on the previous one); use it on small sets.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be (N, D), got shape {tuple(X.shape)}")
    if y.shape != X.shape[:1]:
        raise ValueError(f"y must be ({X.shape[0]},), got shape {tuple(y.shape)}")
    if not torch.isin(y, torch.tensor([0, 1], device=y.device)).all():
        raise ValueError("y must contain only the labels 0 and 1")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    dtype = X.dtype if X.is_floating_point() else torch.float32
    X, target = X.to(dtype), y.to(dtype)
    w = torch.zeros(X.shape[1], dtype=dtype, device=X.device)
    b = torch.zeros((), dtype=dtype, device=X.device)
    accuracies = []
    for _ in range(epochs):
        for xi, yi in zip(X, target, strict=True):
            y_hat = (xi @ w + b > 0).to(dtype)
            w = w + lr * (yi - y_hat) * xi
            b = b + lr * (yi - y_hat)
        accuracies.append(((X @ w + b > 0).to(dtype) == target).float().mean().item())
    return w, b.item(), accuracies


def tent_map_net(depth: int) -> nn.Sequential:
    """An exact ReLU network for the tent map :math:`t(x) = 2\\,\\mathrm{ReLU}(x) -
    4\\,\\mathrm{ReLU}(x-\\tfrac12)` composed ``depth`` times (Telgarsky 2016).

    Each hidden layer has 2 units computing :math:`\\mathrm{ReLU}(u)` and
    :math:`\\mathrm{ReLU}(u-\\tfrac12)` of the previous tent value :math:`u`; the next layer's
    weights fold :math:`2h_1-4h_2` in. On [0, 1] the result is a sawtooth with
    :math:`2^{depth}` linear pieces. ``x: (B, 1)`` -> ``(B, 1)``; float32 parameters (call
    ``.double()`` for float64).
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    layers: list[nn.Module] = []
    for i in range(depth):
        linear = nn.Linear(1 if i == 0 else 2, 2)
        with torch.no_grad():
            fold = torch.tensor([[1.0], [1.0]]) if i == 0 else torch.tensor([[2.0, -4.0]] * 2)
            linear.weight.copy_(fold)
            linear.bias.copy_(torch.tensor([0.0, -0.5]))
        layers += [linear, nn.ReLU()]
    out = nn.Linear(2, 1)
    with torch.no_grad():
        out.weight.copy_(torch.tensor([[2.0, -4.0]]))
        out.bias.zero_()
    return nn.Sequential(*layers, out).requires_grad_(False)


@torch.no_grad()
def count_linear_pieces(
    f: Callable[[torch.Tensor], torch.Tensor],
    lo: float = 0.0,
    hi: float = 1.0,
    n: int = 200_001,
) -> int:
    """Number of linear pieces of a 1-D piecewise-linear function on ``[lo, hi]``.

    ``f`` receives ``x: (n, 1)`` float64 (an ``nn.Module`` is evaluated on a float64 copy) and
    returns ``(n,)`` or ``(n, 1)``. The slopes on the ``n - 1`` grid cells are compared; a kink
    inside a cell gives that cell an in-between slope, so consecutive slope changes count as
    one kink. Pieces = kinks + 1. Resolution: pieces shorter than about two grid cells
    (``2 (hi - lo) / (n - 1)``) are merged with a neighbour.
    """
    if not hi > lo:
        raise ValueError(f"hi must be > lo, got lo={lo}, hi={hi}")
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n must be an int >= 3, got {n!r}")
    if isinstance(f, nn.Module):
        import copy

        module = copy.deepcopy(f).double().cpu()
        f = module
    x = torch.linspace(lo, hi, n, dtype=torch.float64).unsqueeze(1)
    y = torch.as_tensor(f(x)).double().cpu().reshape(-1)
    if y.numel() != n:
        raise ValueError(f"f must return n = {n} values for x of shape (n, 1), got {y.numel()}")
    slopes = torch.diff(y) / torch.diff(x[:, 0])
    tol = 1e-6 * max(1.0, slopes.abs().max().item())
    change = (torch.diff(slopes).abs() > tol).to(torch.int8)
    # a run of consecutive changes is one kink: count the runs' starts
    starts = change[0].item() + (torch.diff(change) == 1).sum().item()
    return int(starts) + 1


def poly2_features(x: torch.Tensor) -> torch.Tensor:
    """Explicit degree-2 feature map with :math:`\\Phi(x)^\\top\\Phi(z) = (x^\\top z)^2`.

    ``x: (N, D)`` -> ``(N, D + D(D-1)/2)``: the squares :math:`x_i^2`, then
    :math:`\\sqrt2\\,x_ix_j` for :math:`i<j`. For ``D = 2``:
    :math:`(x_1^2, x_2^2, \\sqrt2x_1x_2)`, which maps the circle
    :math:`x_1^2+x_2^2=r^2` onto the plane :math:`\\Phi_1+\\Phi_2=r^2`.
    """
    _check_float(x)
    if x.ndim != 2:
        raise ValueError(f"x must be (N, D), got shape {tuple(x.shape)}")
    i, j = torch.triu_indices(x.shape[1], x.shape[1], offset=1, device=x.device)
    return torch.cat([x**2, math.sqrt(2.0) * x[:, i] * x[:, j]], dim=1)


def _check_pair(X: torch.Tensor, Z: torch.Tensor) -> None:
    _check_float(X, "X")
    _check_float(Z, "Z")
    if X.ndim != 2 or Z.ndim != 2 or X.shape[1] != Z.shape[1]:
        raise ValueError(
            f"X and Z must be (N, D) and (M, D), got {tuple(X.shape)} and {tuple(Z.shape)}"
        )


def poly_kernel(X: torch.Tensor, Z: torch.Tensor, degree: int = 2, c: float = 0.0) -> torch.Tensor:
    """Polynomial kernel :math:`K(x, z) = (x^\\top z + c)^{degree}`; ``X: (N, D)``,
    ``Z: (M, D)`` -> ``(N, M)``. With ``degree=2, c=0`` it equals the inner product of
    ``poly2_features``, computed without building them."""
    _check_pair(X, Z)
    if not isinstance(degree, int) or degree < 1:
        raise ValueError(f"degree must be a positive int, got {degree!r}")
    return (X @ Z.T + c) ** degree


def rbf_kernel(X: torch.Tensor, Z: torch.Tensor, gamma: float) -> torch.Tensor:
    """Gaussian (RBF) kernel :math:`K(x, z) = e^{-\\gamma\\lVert x-z\\rVert^2}`; ``X: (N, D)``,
    ``Z: (M, D)`` -> ``(N, M)``. Its feature map is infinite-dimensional."""
    _check_pair(X, Z)
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    sq = (X**2).sum(1, keepdim=True) - 2.0 * X @ Z.T + (Z**2).sum(1)
    return torch.exp(-gamma * sq.clamp_min(0.0))


def is_psd(K: torch.Tensor, tol: float = 1e-8) -> bool:
    """Whether a square matrix is symmetric positive semi-definite (a valid Gram matrix).

    ``K: (N, N)``. Symmetric to ``tol`` (relative to its largest entry), and its smallest
    eigenvalue, computed in float64, is :math:`\\ge -tol\\cdot\\max(1, \\lambda_{max})`
    (Mercer's condition on a finite sample).
    """
    _check_float(K, "K")
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square matrix (N, N), got shape {tuple(K.shape)}")
    K = K.double()
    scale = max(1.0, K.abs().max().item())
    if (K - K.T).abs().max().item() > tol * scale:
        return False
    eigenvalues = torch.linalg.eigvalsh((K + K.T) / 2)
    return bool(eigenvalues.min().item() >= -tol * max(1.0, eigenvalues.max().item()))


# =============================================================================================
# Chapter 2.7: normalization layers from scratch (BatchNorm, LayerNorm, RMSNorm)
# =============================================================================================


def batch_norm(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch normalization with PyTorch's conventions; returns ``(y, running_mean, running_var)``.

    ``x: (N, C)`` or ``(N, C, H, W)``; ``gamma, beta, running_mean, running_var: (C,)``. The
    statistics of channel ``c`` are taken over every axis but ``C`` (the batch, and both
    spatial axes for images). Training mode:
    :math:`\\hat x = (x-\\mu_B)/\\sqrt{\\sigma_B^2+\\epsilon}`, :math:`y=\\gamma\\hat x+\\beta`
    with the *biased* batch variance :math:`\\sigma_B^2 = \\frac1m\\sum(x-\\mu_B)^2` over
    :math:`m` values per channel, and new running estimates
    :math:`\\hat\\mu \\leftarrow (1-m_{om})\\hat\\mu + m_{om}\\mu_B`,
    :math:`\\hat\\sigma^2 \\leftarrow (1-m_{om})\\hat\\sigma^2 + m_{om}\\frac{m}{m-1}\\sigma_B^2`
    (the *unbiased* variance), ``momentum`` :math:`m_{om}` weighting the new statistic. D2L
    writes the same update as ``0.9 * old + 0.1 * new``: its "momentum" 0.9 is ``1 - momentum``.
    Evaluation mode normalizes with the running estimates (an affine map) and returns them
    unchanged. The running statistics are returned as new tensors (no gradient); ``y`` keeps
    the autograd graph to ``x``, ``gamma`` and ``beta``.
    """
    _check_float(x)
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    for name, t in (
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if not torch.is_tensor(t) or t.shape != (channels,):
            shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"{name} must have shape ({channels},) = (C,), got {shape}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    dims = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, channels) + (1,) * (x.ndim - 2)
    if training:
        count = x.numel() // channels
        if count < 2:
            raise ValueError(
                f"x has one value per channel (shape {tuple(x.shape)}): training-mode batch "
                "statistics need at least 2 (use a larger batch, or eval mode)"
            )
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, correction=0)  # biased: what the normalization uses
        with torch.no_grad():
            unbiased = var.detach() * count / (count - 1)
            new_mean = (1 - momentum) * running_mean + momentum * mean.detach()
            new_var = (1 - momentum) * running_var + momentum * unbiased
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean, running_var
    x_hat = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    return gamma.reshape(shape) * x_hat + beta.reshape(shape), new_mean, new_var


class BatchNormScratch(nn.Module):
    """``batch_norm`` as a module, a drop-in for ``nn.BatchNorm1d`` (``num_dims=2``, input
    ``(N, C)``) or ``nn.BatchNorm2d`` (``num_dims=4``, input ``(N, C, H, W)``).

    Parameters ``weight`` (:math:`\\gamma`, ones) and ``bias`` (:math:`\\beta`, zeros), ``2C``
    numbers; buffers ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked``, named as in PyTorch so that state dicts load both ways.
    ``model.train()`` / ``model.eval()`` select batch or running statistics.
    """

    def __init__(
        self,
        num_features: int,
        num_dims: Literal[2, 4] = 2,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if num_dims not in (2, 4):
            raise ValueError(f"num_dims must be 2 (N, C) or 4 (N, C, H, W), got {num_dims!r}")
        self.num_dims, self.eps, self.momentum = num_dims, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, num_dims={self.num_dims}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.num_dims:
            raise ValueError(f"x must have {self.num_dims} dims, got shape {tuple(x.shape)}")
        y, mean, var = batch_norm(
            x,
            self.weight,
            self.bias,
            self.running_mean,
            self.running_var,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )
        if self.training:
            self.running_mean.copy_(mean)
            self.running_var.copy_(var)
            self.num_batches_tracked += 1
        return y


def _check_affine(t: torch.Tensor | None, name: str, d: int) -> None:
    if t is not None and (not torch.is_tensor(t) or t.shape != (d,)):
        shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
        raise ValueError(f"{name} must be None or have shape ({d},) = (D,), got {shape}")


def layer_norm(
    x: torch.Tensor,
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer normalization over the last axis: each sample (or token) on its own.

    ``x: (..., D)``; :math:`\\mu` and the biased :math:`\\sigma^2` are taken over the ``D``
    features of one row, :math:`y = \\gamma\\odot(x-\\mu)/\\sqrt{\\sigma^2+\\epsilon}+\\beta`
    with ``gamma, beta: (D,)`` (``None``: 1 and 0). No batch statistics, so training and
    evaluation agree and a batch of one is fine. Same as ``nn.LayerNorm(D)``.
    """
    _check_float(x)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must be (..., D) with D >= 1, got shape {tuple(x.shape)}")
    _check_affine(gamma, "gamma", x.shape[-1])
    _check_affine(beta, "beta", x.shape[-1])
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, correction=0)
    y = (x - mean) / torch.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def rms_norm(x: torch.Tensor, gamma: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last axis: :math:`y = \\gamma\\odot x/\\sqrt{\\frac1D\\sum_i x_i^2+\\epsilon}`.

    ``x: (..., D)``, ``gamma: (D,)`` or ``None``. No centring and no :math:`\\beta`: a cheaper
    LayerNorm used by modern language models. Same as ``nn.RMSNorm(D, eps=eps)``.
    """
    _check_float(x)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must be (..., D) with D >= 1, got shape {tuple(x.shape)}")
    _check_affine(gamma, "gamma", x.shape[-1])
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y if gamma is None else y * gamma


# =============================================================================================
# Chapter 2.8: residual blocks and residual MLPs (deep-network stability)
# =============================================================================================


class ResidualBlock(nn.Module):
    """:math:`y = x + F(x)` with a two-layer branch ``F``; ``x: (B, width)`` -> ``(B, width)``.

    - ``preact=True`` (pre-activation, He et al. 2016b): :math:`F(x) = W_2\\,\\phi(N_2(W_1\\,
      \\phi(N_1(x))))` and :math:`y = x + F(x)`, so :math:`F = 0` gives exactly :math:`y = x`.
    - ``preact=False`` (the first ResNet): :math:`F(x) = N_2(W_2\\,\\phi(N_1(W_1 x)))` and
      :math:`y = \\phi(x + F(x))`, so :math:`F = 0` gives :math:`\\phi(x)`, not :math:`x`.

    ``N`` is ``BatchNorm1d``, ``LayerNorm`` or nothing (``norm``). ``zero_init=True`` sets the
    last Linear's weight and bias to zero, so that the branch outputs 0 at initialization.
    ``skip=False`` drops the ``x +`` (the matching plain block, for comparisons). The Jacobian
    is :math:`\\partial y/\\partial x = I + \\partial F/\\partial x` (pre-activation).
    """

    def __init__(
        self,
        width: int,
        act: type[nn.Module] = nn.ReLU,
        norm: Literal[None, "batch", "layer"] = None,
        preact: bool = True,
        zero_init: bool = False,
        *,
        skip: bool = True,
    ):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if norm not in (None, "batch", "layer"):
            raise ValueError(f"norm must be None, 'batch' or 'layer', got {norm!r}")
        if not (isinstance(act, type) and issubclass(act, nn.Module)):
            raise TypeError(f"act must be an nn.Module class such as nn.ReLU, got {act!r}")
        self.width, self.preact, self.skip = width, bool(preact), bool(skip)
        self.norm1, self.norm2 = _norm_layer(norm, width), _norm_layer(norm, width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.act = act()
        if zero_init:
            with torch.no_grad():
                self.fc2.weight.zero_()
                self.fc2.bias.zero_()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch :math:`F(x)`, ``(B, width)``."""
        if self.preact:
            return self.fc2(self.act(self.norm2(self.fc1(self.act(self.norm1(x))))))
        return self.norm2(self.fc2(self.act(self.norm1(self.fc1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"x must be (B, {self.width}), got {tuple(x.shape)}")
        out = self.branch(x)
        if self.skip:
            out = x + out
        return out if self.preact else self.act(out)


class ResidualMLP(nn.Module):
    """``Linear(in_dim, width)``, then ``depth`` ``ResidualBlock`` s, then ``Linear(width,
    out_dim)``; ``x: (B, in_dim)`` -> ``(B, out_dim)``.

    :math:`x_{l+1} = x_l + F_l(x_l)`, so by the chain rule :math:`\\partial L/\\partial x_l =
    \\prod_{k=l}^{L-1}(I + J_k)^\\top\\,\\partial L/\\partial x_L`. ``residual=False`` builds
    the matching plain network (the same layers and initial weights for the same seed, without
    the skips): :math:`2\\cdot` ``depth`` hidden Linear layers in a chain. ``norm``,
    ``zero_init`` and ``preact`` are passed to every block. ``model.blocks[i]`` is block ``i``.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        out_dim: int,
        act: type[nn.Module] = nn.Tanh,
        norm: Literal[None, "batch", "layer"] = None,
        zero_init: bool = False,
        residual: bool = True,
        *,
        preact: bool = True,
    ):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("width", width), ("out_dim", out_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an int >= 0, got {depth!r}")
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(width, act, norm, preact, zero_init, skip=residual)
                for _ in range(depth)
            )
        )
        self.out = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.inp.in_features:
            raise ValueError(f"x must be (B, {self.inp.in_features}), got {tuple(x.shape)}")
        return self.out(self.blocks(self.inp(x)))


# =============================================================================================
# Chapter 2.6 (regularization): inverted dropout from scratch
# =============================================================================================


def inverted_dropout(
    x: torch.Tensor,
    p: float,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverted dropout: :math:`h' = 0` with probability ``p``, else :math:`h/(1-p)`.

    So :math:`\\mathbb E[h'] = h` and nothing changes at evaluation: with ``training=False``
    the input is returned as it is (``torch.nn.functional.dropout`` behaves the same). ``p`` is
    the *drop* probability; ``p = 1`` gives zeros, ``p = 0`` the input. ``x``: any shape,
    floating point; the mask is drawn with ``generator`` on ``x``'s device.
    """
    _check_float(x, "x")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a drop probability in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


# =============================================================================================
# Chapter 3.2: LeNet-5 and a small configurable CNN
# =============================================================================================


class LeNet5(nn.Module):
    """LeNet-5 with a dense C3 layer (every C3 map sees all six S2 maps).

    ``x: (N, 1, in_size, in_size)`` -> logits ``(N, n_classes)``. Spatial sizes for
    ``in_size=32``: C1 conv(6, 5x5) 32 -> 28, S2 pool 28 -> 14, C3 conv(16, 5x5) 14 -> 10,
    S4 pool 10 -> 5, C5 conv(fc[0], 5x5) 5 -> 1, then ``flatten(1)``, F6 dense ``fc[1]``, output
    dense ``n_classes``. With ``fc=(120, 84)`` it has 61,706 parameters. ``in_size=28`` pads C1
    by 2 instead of padding the images (the same sizes from C1 on).

    The 1998 network differs: a scaled tanh, trainable average subsampling, a sparse C3 table
    and RBF output units. ``act=nn.Sigmoid, pool="avg"`` is the usual teaching simplification;
    ``act=nn.ReLU, pool="max", norm=True`` (BatchNorm after C1, C3, C5 and F6) is a modern one.
    """

    def __init__(
        self,
        act: Callable[[], nn.Module] = nn.Sigmoid,
        fc: tuple[int, int] = (120, 84),
        in_size: int = 32,
        n_classes: int = 10,
        pool: Literal["avg", "max"] = "avg",
        norm: bool = False,
    ):
        super().__init__()
        if in_size not in (28, 32):
            raise ValueError(
                f"in_size must be 28 or 32 (LeNet-5 reads 32x32 inputs), got {in_size}"
            )
        if len(fc) != 2 or not all(isinstance(v, int) and v > 0 for v in fc):
            raise ValueError(f"fc must be two positive ints (C5 channels, F6 units), got {fc!r}")
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        pooling = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d

        def bn2d(c: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(c)] if norm else []

        c5, f6 = fc
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2 if in_size == 28 else 0), *bn2d(6), act(),  # C1
            pooling(2),  # S2
            nn.Conv2d(6, 16, 5), *bn2d(16), act(),  # C3, dense connection table
            pooling(2),  # S4
            nn.Conv2d(16, c5, 5), *bn2d(c5), act(),  # C5: 5x5 -> 1x1
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (N, C5, 1, 1) -> (N, C5): flatten(1), never view(-1, ...)
            nn.Linear(c5, f6), *([nn.BatchNorm1d(f6)] if norm else []), act(),  # F6
            nn.Linear(f6, n_classes),
        )  # fmt: skip
        self.in_size = in_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (1, self.in_size, self.in_size):
            raise ValueError(
                f"x must have shape (N, 1, {self.in_size}, {self.in_size}), got {tuple(x.shape)}"
            )
        return self.classifier(self.features(x))

    def shape_trace(self) -> list[int]:
        """Spatial size of the input and after every conv and pool layer: ``[32, 28, 14, ...]``."""
        x = torch.zeros(1, 1, self.in_size, self.in_size, device=self.features[0].weight.device)
        sizes = [self.in_size]
        with torch.no_grad():
            for layer in self.features:
                x = layer(x) if not isinstance(layer, nn.BatchNorm2d) else x
                if isinstance(layer, nn.Conv2d | nn.AvgPool2d | nn.MaxPool2d):
                    sizes.append(x.shape[-1])
        return sizes


class SimpleCNN(nn.Module):
    """Two conv(3x3, padding 1) + ReLU + 2x2 max-pool blocks, ``flatten(1)`` and a linear head.

    ``x: (N, in_ch, img, img)`` -> logits ``(N, n_classes)``; the feature map before the head
    is ``(N, channels[1], img // 4, img // 4)``. ``features`` and ``head`` are separate so that
    the flatten step can be inspected.
    """

    def __init__(
        self,
        in_ch: int = 1,
        n_classes: int = 10,
        channels: tuple[int, int] = (16, 32),
        img: int = 8,
    ):
        super().__init__()
        for name, value in (("in_ch", in_ch), ("n_classes", n_classes), ("img", img)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if img < 4:
            raise ValueError(f"img must be >= 4 (two 2x2 pools), got {img}")
        if len(channels) != 2 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"channels must be two positive ints, got {channels!r}")
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(c2 * (img // 4) ** 2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))
