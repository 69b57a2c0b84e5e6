"""Tests for dlcourse.autograd: the scalar engine, gradient checks, the two-layer backward."""

import math

import pytest
import torch
import torch.nn.functional as F

from dlcourse.autograd import (
    Value,
    numerical_grad,
    rel_error,
    two_layer_forward_backward,
)
from dlcourse.exercises import WrongAnswerError, check

# ---------------------------------------------------------------------------------------------
# Value


def scalar_graph(w1, x1, w2, x2, b):
    return (w1 * x1 + w2 * x2 + b) ** 2


def torch_grads(fn, values):
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    out = fn(*leaves)
    out.backward()
    return out.item(), [leaf.grad.item() for leaf in leaves]


def value_grads(fn, values):
    leaves = [Value(v) for v in values]
    out = fn(*leaves)
    out.backward()
    return out.data, [leaf.grad for leaf in leaves]


def test_value_matches_torch_on_the_scalar_graph():
    point = [1.0, 2.0, -1.0, 3.0, 0.5]
    out, grads = value_grads(scalar_graph, point)
    ref_out, ref_grads = torch_grads(scalar_graph, point)
    assert out == pytest.approx(ref_out, abs=1e-12)
    assert grads == pytest.approx(ref_grads, abs=1e-12)
    assert grads[0] == pytest.approx(-2.0) and grads[4] == pytest.approx(-1.0)


def every_operation(a, b, c):
    u = a * b + c / a - 2.0
    v = (u**2 + 1.0).log() + (-u).exp() * 0.5 - 3.0 / (1.0 + b**2)
    return v.tanh() + u.relu() * c + (1.0 - a) * (2.0 + c)


def every_operation_torch(a, b, c):
    u = a * b + c / a - 2.0
    v = torch.log(u**2 + 1.0) + torch.exp(-u) * 0.5 - 3.0 / (1.0 + b**2)
    return torch.tanh(v) + torch.relu(u) * c + (1.0 - a) * (2.0 + c)


@pytest.mark.parametrize("point", [(0.7, -1.3, 2.0), (1.5, 2.0, -0.4), (-2.0, 0.3, 1.1)])
def test_value_matches_torch_on_every_operation(point):
    out, grads = value_grads(every_operation, point)
    ref_out, ref_grads = torch_grads(every_operation_torch, point)
    assert out == pytest.approx(ref_out, abs=1e-12)
    assert grads == pytest.approx(ref_grads, abs=1e-12)


def test_shared_subexpression_gets_both_paths():
    x = Value(3.0)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward()
    assert x.grad == pytest.approx(7.0)


def test_leaf_gradients_accumulate_but_intermediates_do_not():
    x = Value(2.0)
    h = x * 3.0
    y = h * h  # dy/dx = 18 x = 36
    y.backward()
    y.backward()
    assert x.grad == pytest.approx(72.0)
    assert h.grad == pytest.approx(12.0)


def test_relu_derivative_at_zero_is_zero_like_torch():
    x = Value(0.0)
    x.relu().backward()
    t = torch.tensor(0.0, requires_grad=True)
    torch.relu(t).backward()
    assert x.grad == t.grad.item() == 0.0


def test_sum_is_one_node_with_unit_local_gradients():
    a, b, c = Value(1.0), Value(2.0), Value(3.0)
    s = Value.sum([a, b, c])
    assert s.data == 6.0 and len(s.parents) == 3
    (s * 2.0).backward()
    assert (a.grad, b.grad, c.grad) == (2.0, 2.0, 2.0)


def test_topological_order_puts_parents_first():
    a, b = Value(1.0, label="a"), Value(2.0, label="b")
    c = a * b
    d = c + a
    order = d.topological_order()
    assert order[-1] is d
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for parent in node.parents:
            assert position[id(parent)] < position[id(node)]
    assert len(order) == 4


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == pytest.approx(1.0)


def test_value_rejects_bad_input():
    with pytest.raises(TypeError, match="data"):
        Value("3")
    with pytest.raises(TypeError, match="exponent k"):
        Value(2.0) ** Value(2.0)
    with pytest.raises(ValueError, match="log"):
        Value(-1.0).log()
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / 0.0
    with pytest.raises(ValueError, match="local_grads"):
        Value(1.0, parents=(Value(1.0),), local_grads=())


# ---------------------------------------------------------------------------------------------
# numerical_grad and rel_error


@pytest.mark.parametrize(
    "f",
    [
        lambda x: (x**3).sum(),
        lambda x: torch.exp(x).sum(),
        lambda x: torch.sin(x).prod(),
        lambda x: torch.logsumexp(x.flatten(), dim=0),
    ],
)
def test_numerical_grad_matches_autograd_in_float64(f):
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xr = x.clone().requires_grad_()
    f(xr).backward()
    num = numerical_grad(f, x)
    assert num.shape == x.shape and num.dtype == torch.float64
    assert rel_error(num, xr.grad) < 1e-8


def test_numerical_grad_leaves_x_unchanged():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    numerical_grad(lambda t: (t**2).sum(), x)
    assert torch.equal(x, torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_numerical_grad_rejects_bad_input():
    x = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="scalar"):
        numerical_grad(lambda t: t * 2, x)
    with pytest.raises(ValueError, match="eps"):
        numerical_grad(lambda t: t.sum(), x, eps=0.0)
    with pytest.raises(TypeError, match="x"):
        numerical_grad(lambda t: t.sum(), torch.ones(3, dtype=torch.int64))


def test_rel_error_hand_computed():
    a, b = torch.tensor([1.0, 1e-6]), torch.tensor([1.1, 2e-6])
    assert rel_error(a, b) == pytest.approx(0.1 / 1.1)
    assert rel_error(a, b, elementwise=True) == pytest.approx(0.5)
    assert rel_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert rel_error(torch.zeros(0), torch.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        rel_error(torch.zeros(3), torch.zeros(4))


# ---------------------------------------------------------------------------------------------
# two_layer_forward_backward


def two_layer_inputs(batch=32, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, 64, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (batch,), generator=g)
    params = [
        0.2 * torch.randn(shape, generator=g, dtype=dtype)
        for shape in [(16, 64), (16,), (10, 16), (10,)]
    ]
    return X, y, params


def autograd_reference(X, y, W1, b1, W2, b2):
    W1, b1, W2, b2 = (t.clone().requires_grad_() for t in (W1, b1, W2, b2))
    Z1 = X @ W1.T + b1
    Z1.retain_grad()
    Z2 = torch.relu(Z1) @ W2.T + b2
    Z2.retain_grad()
    loss = F.cross_entropy(Z2, y)
    loss.backward()
    grads = {"W1": W1.grad, "b1": b1.grad, "W2": W2.grad, "b2": b2.grad}
    return loss.detach(), {**grads, "Z1": Z1.grad, "Z2": Z2.grad}


@pytest.mark.parametrize("batch", [1, 32])
def test_two_layer_backward_matches_autograd(batch):
    X, y, params = two_layer_inputs(batch)
    loss, grads = two_layer_forward_backward(X, F.one_hot(y, 10).double(), *params)
    ref_loss, ref_grads = autograd_reference(X, y, *params)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    assert set(grads) == set(ref_grads)
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-10, atol=1e-14)


def test_two_layer_relu_derivative_at_zero_is_zero():
    X, y, params = two_layer_inputs(4)
    X[0] = 0.0
    params[1][:3] = 0.0  # Z1[0, :3] == 0 exactly
    _, grads = two_layer_forward_backward(X, F.one_hot(y, 10).double(), *params)
    _, ref_grads = autograd_reference(X, y, *params)
    assert torch.all(grads["Z1"][0, :3] == 0)
    torch.testing.assert_close(grads["b1"], ref_grads["b1"], rtol=1e-10, atol=1e-14)


def test_two_layer_rejects_bad_shapes():
    X, y, (W1, b1, W2, b2) = two_layer_inputs(4)
    Y = F.one_hot(y, 10).double()
    with pytest.raises(ValueError, match="b1"):
        two_layer_forward_backward(X, Y, W1, b1[:3], W2, b2)
    with pytest.raises(ValueError, match="W1"):
        two_layer_forward_backward(X, Y, W1[:, :10], b1, W2, b2)
    with pytest.raises(TypeError, match="W2"):
        two_layer_forward_backward(X, Y, W1, b1, W2.float(), b2)
    with pytest.raises(ValueError, match="Y_onehot"):
        two_layer_forward_backward(X, 2 * Y, W1, b1, W2, b2)


# ---------------------------------------------------------------------------------------------
# Exercise checks: wrong answers get a teaching message


def test_scalar_graph_check_catches_a_missing_factor_two():
    with pytest.raises(WrongAnswerError, match="2z"):
        check("ex-backprop-scalar-graph", (-1.0, -1.5, -0.5))


def test_scalar_graph_check_catches_a_sign_error():
    with pytest.raises(WrongAnswerError, match="sign"):
        check("ex-backprop-scalar-graph", (2.0, 3.0, 1.0))


def test_two_layer_check_catches_a_missing_batch_mean():
    def no_mean(X, Y, W1, b1, W2, b2):
        loss, grads = two_layer_forward_backward(X, Y, W1, b1, W2, b2)
        return loss, {k: v * len(X) for k, v in grads.items()}

    with pytest.raises(WrongAnswerError, match="batch mean"):
        check("ex-backprop-two-layer", no_mean)


def test_two_layer_check_catches_relu_derivative_one_at_zero():
    def relu_ge(X, Y, W1, b1, W2, b2):
        Z1 = X @ W1.T + b1
        A1 = Z1.clamp(min=0)
        Z2 = A1 @ W2.T + b2
        P = torch.softmax(Z2, 1)
        loss = -(Y * torch.log(P)).sum(1).mean()
        G2 = (P - Y) / len(X)
        G1 = (G2 @ W2) * (Z1 >= 0)
        return loss, {"W1": G1.T @ X, "b1": G1.sum(0), "W2": G2.T @ A1, "b2": G2.sum(0)}

    with pytest.raises(WrongAnswerError, match="exactly 0"):
        check("ex-backprop-two-layer", relu_ge)


def test_two_layer_check_catches_a_missing_key():
    def no_biases(*args):
        loss, grads = two_layer_forward_backward(*args)
        return loss, {"W1": grads["W1"], "W2": grads["W2"]}

    with pytest.raises(WrongAnswerError, match="b1"):
        check("ex-backprop-two-layer", no_biases)


def test_logit_gradient_check_messages():
    probs = torch.softmax(torch.tensor([2.0, 1.0, 0.0]), 0)
    with pytest.raises(WrongAnswerError, match="probabilities"):
        check("ex-backprop-logit-grad", probs)
    with pytest.raises(WrongAnswerError, match="prediction minus label"):
        check("ex-backprop-logit-grad", torch.tensor([1.0, 0.0, 0.0]) - probs)
    with pytest.raises(WrongAnswerError, match="3 numbers"):
        check("ex-backprop-logit-grad", [0.1, 0.2])
    assert math.isclose(float(probs[0]) - 1, -0.3348, abs_tol=1e-4)
