"""Backpropagation from scratch, and the tools that check a gradient without trusting it.

- ``Value``: a scalar that remembers how it was made. Each operation stores its parents and its
  local derivatives; ``backward()`` orders the graph topologically and sweeps it once in reverse,
  adding *upstream gradient x local derivative* into every parent.
- ``numerical_grad`` and ``rel_error``: central finite differences and the relative error used by
  every gradient check in the book.
- ``two_layer_forward_backward``: the hand-derived backward pass of Linear-ReLU-Linear-softmax-CE
  on a batch, in PyTorch's ``(out, in)`` weight layout.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import torch

from .losses import log_softmax

__all__ = [
    "Dual",
    "Value",
    "classify_critical_point",
    "empirical_fisher",
    "graph_text",
    "hessian",
    "hvp",
    "negative_curvature_direction",
    "newton_step",
    "numerical_grad",
    "power_iteration",
    "rel_error",
    "two_layer_forward_backward",
]


# ---------------------------------------------------------------------------------------------
# A scalar reverse-mode engine


class Value:
    """A scalar node of a computation graph: ``data`` (forward value) and ``grad`` (dL/d self).

    ``parents`` are the inputs of the operation that produced the node and ``local_grads`` the
    partial derivatives d self / d parent, evaluated during the forward pass. Supports ``+ - * /``
    (with numbers on either side), ``** k`` for a number ``k``, ``relu``, ``tanh``, ``exp``,
    ``log`` and the n-ary ``Value.sum``.
    """

    __slots__ = ("data", "grad", "parents", "local_grads", "op", "label")

    def __init__(
        self,
        data: float,
        parents: tuple[Value, ...] = (),
        local_grads: tuple[float, ...] = (),
        op: str = "",
        label: str = "",
    ):
        if isinstance(data, Value) or not isinstance(data, numbers.Real):
            raise TypeError(f"data must be a real number, got {type(data).__name__}")
        if len(parents) != len(local_grads):
            raise ValueError(
                f"parents and local_grads must have the same length, got {len(parents)} "
                f"and {len(local_grads)}"
            )
        self.data = float(data)
        self.grad = 0.0
        self.parents = tuple(parents)
        self.local_grads = tuple(float(g) for g in local_grads)
        self.op = op
        self.label = label

    def __repr__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.6g}, grad={self.grad:.6g})"

    @staticmethod
    def _lift(other: Value | float) -> Value:
        if isinstance(other, Value):
            return other
        if isinstance(other, numbers.Real):
            return Value(other)
        raise TypeError(f"cannot combine a Value with {type(other).__name__}")

    # binary operations: (result, (parents), (d result / d parent for each parent))
    def __add__(self, other: Value | float) -> Value:
        other = self._lift(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __sub__(self, other: Value | float) -> Value:
        other = self._lift(other)
        return Value(self.data - other.data, (self, other), (1.0, -1.0), "-")

    def __mul__(self, other: Value | float) -> Value:
        other = self._lift(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __truediv__(self, other: Value | float) -> Value:
        other = self._lift(other)
        if other.data == 0.0:
            raise ZeroDivisionError("division of a Value by zero")
        q = self.data / other.data
        return Value(q, (self, other), (1.0 / other.data, -q / other.data), "/")

    def __radd__(self, other: float) -> Value:
        return self._lift(other) + self

    def __rsub__(self, other: float) -> Value:
        return self._lift(other) - self

    def __rmul__(self, other: float) -> Value:
        return self._lift(other) * self

    def __rtruediv__(self, other: float) -> Value:
        return self._lift(other) / self

    def __neg__(self) -> Value:
        return Value(-self.data, (self,), (-1.0,), "neg")

    def __pow__(self, k: float) -> Value:
        if isinstance(k, Value) or not isinstance(k, numbers.Real):
            raise TypeError(f"the exponent k must be a number, got {type(k).__name__}")
        return Value(self.data**k, (self,), (k * self.data ** (k - 1),), f"**{k:g}")

    # unary functions
    def relu(self) -> Value:
        """max(x, 0); its derivative at exactly 0 is taken as 0, as in PyTorch."""
        return Value(max(self.data, 0.0), (self,), (1.0 if self.data > 0 else 0.0,), "relu")

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,), "tanh")

    def exp(self) -> Value:
        e = math.exp(self.data)
        return Value(e, (self,), (e,), "exp")

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log needs a positive Value, got data={self.data}")
        return Value(math.log(self.data), (self,), (1.0 / self.data,), "log")

    @staticmethod
    def sum(values: Iterable[Value | float]) -> Value:
        """One node for ``v_1 + ... + v_n`` (every local derivative is 1)."""
        parents = tuple(Value._lift(v) for v in values)
        if not parents:
            raise ValueError("values must contain at least one term")
        return Value(sum(p.data for p in parents), parents, (1.0,) * len(parents), "+")

    # the backward pass
    def topological_order(self) -> list[Value]:
        """Every node this one depends on (itself last), each after all of its parents.

        Depth-first post-order with an explicit stack, so deep graphs do not hit Python's
        recursion limit.
        """
        order: list[Value] = []
        seen: set[int] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(node.parents) if id(p) not in seen)
        return order

    def backward(self) -> None:
        """Fill ``grad`` of every node with dself/dnode by one reverse sweep.

        Intermediate gradients are recomputed from zero on each call; gradients of leaves
        (nodes without parents) accumulate across calls, like ``.grad`` in PyTorch.
        """
        order = self.topological_order()
        for node in order:
            if node.parents:
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(order):  # children before parents
            for parent, local in zip(node.parents, node.local_grads, strict=True):
                parent.grad += node.grad * local


# ---------------------------------------------------------------------------------------------
# Gradient checks


def numerical_grad(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Central differences :math:`(f(x + \\epsilon e_i) - f(x - \\epsilon e_i)) / 2\\epsilon`.

    ``x``: floating tensor of any shape; ``f(x)`` must return one number. Returns a tensor shaped
    like ``x``. The arithmetic happens in ``x``'s dtype, so pass float64: the truncation error
    is :math:`O(\\epsilon^2)` but the rounding error is about ``u |f| / eps`` (``u`` = 1e-16 in
    float64, 6e-8 in float32). Costs ``2 * x.numel()`` calls of ``f``: small inputs only.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    x = x.detach().clone()
    flat = x.view(-1)
    grad = torch.empty_like(flat)
    for i in range(flat.numel()):  # one coordinate at a time: this is the definition
        original = flat[i].clone()
        flat[i] = original + eps
        f_plus = f(x)
        flat[i] = original - eps
        f_minus = f(x)
        flat[i] = original
        if not torch.is_tensor(f_plus) or f_plus.numel() != 1:
            raise ValueError("f must return a scalar tensor (one element)")
        grad[i] = (f_plus.detach() - f_minus.detach()).reshape(()) / (2 * eps)
    return grad.view_as(x)


def rel_error(
    a: torch.Tensor, b: torch.Tensor, tiny: float = 1e-12, elementwise: bool = False
) -> float:
    """Relative error of ``a`` against ``b`` (same shape), compared in float64.

    Default: the largest absolute difference relative to the largest entry,
    :math:`\\max_i|a_i-b_i| \\,/\\, \\max(\\max_i|a_i|, \\max_i|b_i|, \\text{tiny})`. With
    ``elementwise=True``: :math:`\\max_i |a_i-b_i| / \\max(|a_i|, |b_i|, \\text{tiny})`, which
    is stricter and flags a tiny entry (say 1e-5) whose finite-difference estimate carries the
    usual 1e-10 absolute rounding error, even though nothing is wrong. ``tiny`` avoids 0/0.
    """
    if not (torch.is_tensor(a) and torch.is_tensor(b)):
        raise TypeError("a and b must be torch tensors")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.numel() == 0:
        return 0.0
    a, b = a.detach().double(), b.detach().double().to(a.device)
    if elementwise:
        scale = torch.maximum(a.abs(), b.abs()).clamp(min=tiny)
        return ((a - b).abs() / scale).max().item()
    scale = max(a.abs().max().item(), b.abs().max().item(), tiny)
    return (a - b).abs().max().item() / scale


# ---------------------------------------------------------------------------------------------
# A two-layer network by hand


def _require(t: torch.Tensor, name: str, shape: Sequence[int], dtype: torch.dtype) -> None:
    if not torch.is_tensor(t):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (the dtype of X), got {t.dtype}")


def two_layer_forward_backward(
    X: torch.Tensor,
    Y_onehot: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and hand-derived gradients of Linear-ReLU-Linear-softmax-cross-entropy.

    Shapes: ``X: (B, D)``, ``Y_onehot: (B, C)`` (rows sum to 1), ``W1: (H, D)``, ``b1: (H,)``,
    ``W2: (C, H)``, ``b2: (C,)`` (PyTorch's ``(out, in)`` layout). Forward::

        Z1 = X W1^T + b1,  A1 = relu(Z1),  Z2 = A1 W2^T + b2,  P = softmax(Z2)
        L  = -(1/B) sum_n sum_c Y[n, c] log P[n, c]

    Backward (``G`` = dL/dZ, ``1[.]`` the ReLU mask with ReLU'(0) = 0)::

        G2 = (P - Y) / B,         dW2 = G2^T A1,  db2 = sum_n G2[n]
        G1 = (G2 W2) * 1[Z1 > 0], dW1 = G1^T X,   db1 = sum_n G1[n]

    Returns ``(loss, grads)`` with ``grads`` keys ``W1, b1, W2, b2`` (shaped like the
    parameters) and ``Z1: (B, H)``, ``Z2: (B, C)`` (the two deltas).
    """
    if not torch.is_tensor(X) or X.ndim != 2 or not X.is_floating_point():
        raise ValueError(f"X must be a floating (B, D) tensor, got {getattr(X, 'shape', X)}")
    (B, D), H = X.shape, (W1.shape[0] if torch.is_tensor(W1) and W1.ndim == 2 else -1)
    C = W2.shape[0] if torch.is_tensor(W2) and W2.ndim == 2 else -1
    if H < 1 or C < 1:
        raise ValueError("W1 must be (H, D) and W2 must be (C, H) matrices")
    _require(W1, "W1", (H, D), X.dtype)
    _require(b1, "b1", (H,), X.dtype)
    _require(W2, "W2", (C, H), X.dtype)
    _require(b2, "b2", (C,), X.dtype)
    _require(Y_onehot, "Y_onehot", (B, C), X.dtype)
    ones = torch.ones(B, dtype=X.dtype, device=X.device)
    if not torch.allclose(Y_onehot.sum(dim=1), ones, atol=1e-6):
        raise ValueError("Y_onehot rows must sum to 1 (one-hot labels or distributions)")

    # forward: keep every intermediate the backward pass will reuse
    Z1 = X @ W1.T + b1
    A1 = Z1.clamp(min=0)
    Z2 = A1 @ W2.T + b2
    logP = log_softmax(Z2, dim=1)
    loss = -(Y_onehot * logP).sum(dim=1).mean()

    # backward: upstream gradient times local derivative, layer by layer
    G2 = (logP.exp() - Y_onehot) / B
    dW2, db2 = G2.T @ A1, G2.sum(dim=0)
    G1 = (G2 @ W2) * (Z1 > 0)
    dW1, db1 = G1.T @ X, G1.sum(dim=0)
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "Z1": G1, "Z2": G2}


# ---------------------------------------------------------------------------------------------
# Forward mode, and a look inside torch.autograd's graph (chapter 1.2)


class Dual:
    """A dual number ``value + tangent * eps`` with ``eps**2 = 0``: forward-mode differentiation.

    Every operation maps ``(a, a')`` to ``(f(a), f'(a) a')`` (chain rule), so after evaluating
    ``f`` on inputs whose tangents form a direction ``v``, the output's ``tangent`` is the
    directional derivative :math:`\\nabla f \\cdot v`. One pass per input direction: the full
    gradient of ``f: R^n -> R`` needs ``n`` passes (reverse mode, ``Value``, needs one).
    Supports ``+ - * /`` (with numbers on either side), ``** k`` for a number ``k``, ``exp``,
    ``log``, ``tanh`` and ``relu`` (derivative 0 at 0, as in PyTorch).
    """

    __slots__ = ("value", "tangent")

    def __init__(self, value: float, tangent: float = 0.0):
        for name, x in (("value", value), ("tangent", tangent)):
            if isinstance(x, Dual) or not isinstance(x, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
        self.value = float(value)
        self.tangent = float(tangent)

    def __repr__(self) -> str:
        return f"Dual(value={self.value:.6g}, tangent={self.tangent:.6g})"

    @staticmethod
    def _lift(other: Dual | float) -> Dual:
        if isinstance(other, Dual):
            return other
        if isinstance(other, numbers.Real):
            return Dual(other)  # a constant: tangent 0
        raise TypeError(f"cannot combine a Dual with {type(other).__name__}")

    def __add__(self, other: Dual | float) -> Dual:
        other = self._lift(other)
        return Dual(self.value + other.value, self.tangent + other.tangent)

    def __sub__(self, other: Dual | float) -> Dual:
        other = self._lift(other)
        return Dual(self.value - other.value, self.tangent - other.tangent)

    def __mul__(self, other: Dual | float) -> Dual:
        other = self._lift(other)
        tangent = self.tangent * other.value + self.value * other.tangent  # product rule
        return Dual(self.value * other.value, tangent)

    def __truediv__(self, other: Dual | float) -> Dual:
        other = self._lift(other)
        if other.value == 0.0:
            raise ZeroDivisionError("division of a Dual by zero")
        q = self.value / other.value
        return Dual(q, (self.tangent - q * other.tangent) / other.value)  # quotient rule

    def __radd__(self, other: float) -> Dual:
        return self._lift(other) + self

    def __rsub__(self, other: float) -> Dual:
        return self._lift(other) - self

    def __rmul__(self, other: float) -> Dual:
        return self._lift(other) * self

    def __rtruediv__(self, other: float) -> Dual:
        return self._lift(other) / self

    def __neg__(self) -> Dual:
        return Dual(-self.value, -self.tangent)

    def __pow__(self, k: float) -> Dual:
        if isinstance(k, Dual) or not isinstance(k, numbers.Real):
            raise TypeError(f"the exponent k must be a number, got {type(k).__name__}")
        return Dual(self.value**k, k * self.value ** (k - 1) * self.tangent)

    def exp(self) -> Dual:
        e = math.exp(self.value)
        return Dual(e, e * self.tangent)

    def log(self) -> Dual:
        if self.value <= 0:
            raise ValueError(f"log needs a positive Dual, got value={self.value}")
        return Dual(math.log(self.value), self.tangent / self.value)

    def tanh(self) -> Dual:
        t = math.tanh(self.value)
        return Dual(t, (1.0 - t * t) * self.tangent)

    def relu(self) -> Dual:
        """max(x, 0); derivative 0 at exactly 0, as in PyTorch and ``Value.relu``."""
        return Dual(max(self.value, 0.0), self.tangent if self.value > 0 else 0.0)


def _describe_saved(value: object) -> str:
    """A short text for one saved-for-backward attribute of a ``grad_fn`` node."""
    if torch.is_tensor(value):
        if value.numel() <= 4:
            numbers_ = ", ".join(f"{v:.4g}" for v in value.detach().reshape(-1).tolist())
            return f"[{numbers_}]" if value.ndim else numbers_
        return f"tensor{tuple(value.shape)}"
    if value is None:
        return "not saved"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def graph_text(
    t: torch.Tensor, max_depth: int = 20, names: dict[str, torch.Tensor] | None = None
) -> str:
    """The backward graph behind ``t`` as indented text, one node per line, output first.

    Walks ``t.grad_fn`` and its ``next_functions`` (the backward functions of the inputs). Each
    line names the node's class (``MulBackward0``: the backward of a product) and the values it
    saved for the backward pass (its ``_saved_*`` attributes; ``<freed>`` once ``backward()``
    has released them). ``AccumulateGrad`` nodes are the leaves that will receive ``.grad``,
    labelled by their name in ``names`` (``{"w": w}``) when given; ``(no grad)`` marks an input
    that does not require gradients. A node reached a second time is printed once more with
    ``(seen above)`` and not expanded again; below ``max_depth`` levels the walk stops at
    ``...``.
    """
    if not torch.is_tensor(t):
        raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
    if t.grad_fn is None:
        kind = "a leaf" if t.requires_grad else "a tensor that does not require grad"
        raise ValueError(f"t has no grad_fn (it is {kind}); pass the result of an operation")
    if not isinstance(max_depth, int) or max_depth < 1:
        raise ValueError(f"max_depth must be a positive int, got {max_depth!r}")
    leaf_names = {id(v): k for k, v in (names or {}).items()}
    lines: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(t.grad_fn, 0)]
    while stack:  # depth first, with an explicit stack (deep graphs, no recursion limit)
        node, depth = stack.pop()
        indent = "  " * depth
        if node is None:
            lines.append(f"{indent}(no grad)")
            continue
        if depth >= max_depth:
            lines.append(f"{indent}...")
            continue
        name = type(node).__name__
        if name == "AccumulateGrad":
            leaf = node.variable
            label = leaf_names.get(id(leaf), "")
            label = f" {label}" if label else ""
            lines.append(f"{indent}AccumulateGrad -> leaf{label} {tuple(leaf.shape)}")
            continue
        if id(node) in seen:
            lines.append(f"{indent}{name} (seen above)")
            continue
        seen.add(id(node))
        saved = []
        for attr in sorted(a for a in dir(node) if a.startswith("_saved_")):
            try:
                text = _describe_saved(getattr(node, attr))
            except RuntimeError:  # released by backward()
                text = "<freed>"
            saved.append(f"{attr.removeprefix('_saved_')}={text}")
        lines.append(f"{indent}{name}" + (f"  saved: {', '.join(saved)}" if saved else ""))
        stack.extend((child, depth + 1) for child, _ in reversed(node.next_functions))
    return "\n".join(lines)


# Chapter 1.3: score and Fisher information by autograd


def empirical_fisher(
    log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    samples: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean score and Fisher information estimated from samples, by autograd.

    ``log_prob(theta, samples)`` returns the ``(N,)`` log-probabilities (or log-densities) of the
    ``N`` samples under the parameters ``theta`` (any shape, ``P = theta.numel()`` entries).
    The per-sample scores :math:`s_n = \\nabla_\\theta\\log p(x_n;\\theta)` form an ``(N, P)``
    Jacobian; returns :math:`\\bar s = \\frac1N\\sum_n s_n` of shape ``(P,)`` and
    :math:`\\hat I = \\frac1N\\sum_n s_n s_n^\\top` of shape ``(P, P)``. When the samples come from
    ``p(.; theta)`` itself, :math:`\\mathbb E[s] = 0` and :math:`\\hat I` estimates the Fisher
    information :math:`I(\\theta) = \\mathbb E[ss^\\top]`. ``log_prob`` must be written with
    differentiable torch operations (it is differentiated in forward mode).
    """
    if not callable(log_prob):
        raise TypeError("log_prob must be a function log_prob(theta, samples) -> (N,) tensor")
    if not torch.is_tensor(theta) or not theta.is_floating_point():
        raise TypeError(f"theta must be a floating-point tensor, got {type(theta).__name__}")
    if not torch.is_tensor(samples) or samples.ndim == 0 or len(samples) == 0:
        raise ValueError("samples must be a tensor with at least one sample along dim 0")
    n = len(samples)
    out = log_prob(theta, samples)
    if not torch.is_tensor(out) or out.shape != (n,):
        raise ValueError(
            f"log_prob(theta, samples) must return shape (N,) = ({n},), "
            f"got {tuple(getattr(out, 'shape', ()))}"
        )
    # forward mode: one pass per parameter (the (P, P) result keeps P small), not one per sample
    scores = torch.func.jacfwd(lambda t: log_prob(t, samples))(theta.detach()).reshape(n, -1)
    return scores.mean(dim=0), scores.T @ scores / n


# =============================================================================================
# Curvature: Hessians, Hessian-vector products and critical points (chapter 2.2)
#
# Second-order tools for small problems (``hessian``, ``classify_critical_point``,
# ``newton_step``, ``negative_curvature_direction``: dense matrices) and for networks
# (``hvp`` by double backprop and ``power_iteration``: never form the matrix).

CriticalPoint = Literal["min", "max", "saddle", "degenerate"]


def _require_square_matrix(H: torch.Tensor, name: str = "H") -> int:
    if not torch.is_tensor(H) or not H.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {getattr(H, 'dtype', H)}")
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {tuple(H.shape)}")
    return H.shape[0]


def _require_symmetric(H: torch.Tensor, name: str = "H") -> None:
    _require_square_matrix(H, name)
    scale = H.abs().max().clamp(min=1.0)
    if not torch.allclose(H, H.T, rtol=1e-5, atol=1e-6 * scale.item()):
        raise ValueError(f"{name} must be symmetric (a Hessian), but H != H.T")


def hessian(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Dense Hessian :math:`H_{ij} = \\partial^2 f / \\partial x_i \\partial x_j` at ``x``.

    ``fn`` maps a floating tensor shaped like ``x`` to a scalar; the result has shape
    ``(*x.shape, *x.shape)``, as ``torch.autograd.functional.hessian``. Row ``i`` is the
    gradient of :math:`\\partial f/\\partial x_i`: one backward pass through the graph of the
    gradient (built with ``create_graph=True``) per entry of ``x``, so small problems only.
    Entries of the gradient that do not depend on ``x`` give zero rows.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    n = x.numel()
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = fn(x)
        if not torch.is_tensor(value) or value.numel() != 1:
            raise ValueError("fn must return a scalar tensor (one element)")
        (grad,) = torch.autograd.grad(value.reshape(()), x, create_graph=True, allow_unused=True)
        if grad is None or not grad.requires_grad:  # fn is constant or linear in x
            return torch.zeros(*x.shape, *x.shape, dtype=x.dtype, device=x.device)
        grad = grad.reshape(-1)
        rows = []
        for i in range(n):  # one row per coordinate: the definition, for small n
            (row,) = torch.autograd.grad(grad[i], x, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(x) if row is None else row)
    return torch.stack(rows).reshape(*x.shape, *x.shape).detach()


def hvp(
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    v: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    """Hessian-vector product :math:`\\mathbf H\\mathbf v` by double backprop (Pearlmutter).

    :math:`\\mathbf H\\mathbf v = \\nabla_\\theta\\,(\\nabla_\\theta L(\\theta)^\\top\\mathbf v)`:
    one backward pass builds the gradient with ``create_graph=True``, a second differentiates
    its dot product with ``v``. Costs about two gradients, never forms the ``(P, P)`` matrix.
    ``loss_fn()`` recomputes the scalar loss from ``params`` (tensors with
    ``requires_grad=True``, e.g. ``list(model.parameters())``); ``v`` has one tensor per
    parameter, each of the same shape. Returns one tensor per parameter (detached).
    """
    params, v = list(params), list(v)
    if not params:
        raise ValueError("params must hold at least one tensor")
    if len(v) != len(params):
        raise ValueError(f"v must hold one tensor per parameter ({len(params)}), got {len(v)}")
    for i, (p, vi) in enumerate(zip(params, v, strict=True)):
        if not torch.is_tensor(p) or not p.requires_grad:
            raise ValueError(f"params[{i}] must be a tensor with requires_grad=True")
        if not torch.is_tensor(vi) or vi.shape != p.shape:
            raise ValueError(
                f"v[{i}] must have the shape of params[{i}], {tuple(p.shape)}, "
                f"got {tuple(getattr(vi, 'shape', ()))}"
            )
    with torch.enable_grad():
        loss = loss_fn()
        if not torch.is_tensor(loss) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor (one element)")
        grads = torch.autograd.grad(loss.reshape(()), params, create_graph=True, allow_unused=True)
        pairs = [(g, vi) for g, vi in zip(grads, v, strict=True) if g is not None]
        dot = sum(((g * vi.detach()).sum() for g, vi in pairs), torch.zeros((), device=loss.device))
        if not dot.requires_grad:  # the loss is linear (or constant) in params
            return [torch.zeros_like(p) for p in params]
        out = torch.autograd.grad(dot, params, allow_unused=True)
    return [
        torch.zeros_like(p) if o is None else o.detach() for p, o in zip(params, out, strict=True)
    ]


def power_iteration(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    iters: int = 100,
    shift: float = 0.0,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[float, torch.Tensor]:
    """Dominant eigenpair of a symmetric operator ``A`` given only ``v -> A v``.

    Iterates :math:`\\mathbf v \\leftarrow (\\mathbf A - c\\mathbf I)\\mathbf v /
    \\lVert(\\mathbf A - c\\mathbf I)\\mathbf v\\rVert` with ``c = shift`` from a seeded random
    unit vector, and returns the Rayleigh quotient :math:`\\mathbf v^\\top\\mathbf A\\mathbf v`
    of ``A`` itself (not of the shifted operator) and ``v: (dim,)``. Without a shift it finds
    the eigenvalue of largest *magnitude*, which may be negative. With ``shift`` at or above
    the largest eigenvalue, :math:`\\mathbf A - c\\mathbf I` is negative semi-definite and its
    dominant eigenvector is the one of the most negative eigenvalue of ``A``. The error shrinks
    like :math:`|\\mu_2/\\mu_1|^{k}` (two largest magnitudes of the shifted operator).
    """
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=generator, dtype=dtype).to(device or "cpu")
    v = v / v.norm()
    Av = None
    for _ in range(iters):
        Av = matvec(v)
        if not torch.is_tensor(Av) or Av.shape != (dim,):
            raise ValueError(
                f"matvec must return a ({dim},) tensor, got {getattr(Av, 'shape', Av)}"
            )
        w = Av - shift * v
        norm = w.norm()
        if norm == 0:  # v is an eigenvector with eigenvalue == shift
            break
        v = w / norm
    Av = matvec(v)
    return float(v @ Av), v


def classify_critical_point(H: torch.Tensor, tol: float = 1e-8) -> CriticalPoint:
    """Second-derivative test at a critical point from the eigenvalues of the Hessian ``H: (n, n)``.

    An eigenvalue counts as positive above ``tol``, negative below ``-tol``, zero otherwise.
    ``"saddle"`` whenever both signs occur (zeros do not matter then); ``"min"`` if all are
    positive, ``"max"`` if all are negative; ``"degenerate"`` if the Hessian is semi-definite
    and singular: the test is inconclusive and higher-order terms decide (``x^3``, ``x^4``).
    """
    _require_symmetric(H)
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    eigs = torch.linalg.eigvalsh(H)
    positive, negative = bool((eigs > tol).any()), bool((eigs < -tol).any())
    if positive and negative:
        return "saddle"
    if bool((eigs > tol).all()):
        return "min"
    if bool((eigs < -tol).all()):
        return "max"
    return "degenerate"


def newton_step(grad: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """The Newton step :math:`\\Delta = -\\mathbf H^{-1}\\mathbf g` (``grad: (n,)``, ``H: (n, n)``).

    It jumps to the stationary point of the local quadratic model
    :math:`\\mathbf g^\\top\\Delta + \\tfrac12\\Delta^\\top\\mathbf H\\Delta`, whatever kind it is:
    along a direction of negative curvature the step goes *uphill*, towards a saddle or a
    maximum. Solves the linear system (no explicit inverse); raises if ``H`` is singular.
    """
    n = _require_square_matrix(H)
    if not torch.is_tensor(grad) or grad.shape != (n,):
        raise ValueError(
            f"grad must have shape ({n},) to match H, got {getattr(grad, 'shape', grad)}"
        )
    return -torch.linalg.solve(H, grad.to(H.dtype))


def negative_curvature_direction(H: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Smallest eigenvalue of a symmetric ``H: (n, n)`` and its unit eigenvector ``(n,)``.

    At a saddle (gradient 0) a step :math:`\\alpha\\mathbf v` changes the loss by
    :math:`\\tfrac12\\alpha^2\\lambda_{\\min} + O(\\alpha^3)`, a decrease when
    :math:`\\lambda_{\\min} < 0` and ``alpha`` is small. The sign of ``v`` is fixed so that its
    largest-magnitude entry is positive (``-v`` is as good a direction).
    """
    _require_symmetric(H)
    eigs, vecs = torch.linalg.eigh(H)
    v = vecs[:, 0]
    v = v * torch.sign(v[v.abs().argmax()])
    return float(eigs[0]), v
