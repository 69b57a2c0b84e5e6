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

import torch

from .losses import cross_entropy, stable_softmax

__all__ = [
    "ManualLinear",
    "ManualModule",
    "ManualReLU",
    "ManualSequential",
    "ManualSoftmaxCE",
    "dot_product_test",
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


__all__ += ["INIT_SCHEMES", "activation_stats", "init_module"]
