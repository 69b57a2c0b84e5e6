"""Tests for dlcourse.nn: layers with hand-written backward passes."""

import pytest
import torch
import torch.nn.functional as F

from dlcourse.autograd import two_layer_forward_backward
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.nn import (
    ManualLinear,
    ManualReLU,
    ManualSequential,
    ManualSoftmaxCE,
    dot_product_test,
)

f64 = torch.float64


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_linear_forward_and_backward_match_torch(gen):
    layer = ManualLinear(5, 3, generator=gen, dtype=f64)
    x = torch.randn(4, 5, generator=gen, dtype=f64)
    g = torch.randn(4, 3, generator=gen, dtype=f64)
    ref = torch.nn.Linear(5, 3, dtype=f64)
    with torch.no_grad():
        ref.weight.copy_(layer.W)
        ref.bias.copy_(layer.b)
    xr = x.clone().requires_grad_()
    out = ref(xr)
    out.backward(g)
    torch.testing.assert_close(layer(x), out.detach())
    torch.testing.assert_close(layer.backward(g), xr.grad)
    torch.testing.assert_close(layer.dW, ref.weight.grad)
    torch.testing.assert_close(layer.db, ref.bias.grad)


def test_linear_init_is_seeded_and_bounded():
    a = ManualLinear(16, 8, generator=torch.Generator().manual_seed(3))
    b = ManualLinear(16, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b)
    assert a.W.shape == (8, 16) and a.W.abs().max() <= 0.25


def test_relu_backward_matches_torch_including_zero():
    x = torch.tensor([[-1.0, 0.0, 2.0]], dtype=f64)
    relu = ManualReLU()
    relu(x)
    xr = x.clone().requires_grad_()
    torch.relu(xr).backward(torch.ones_like(x))
    torch.testing.assert_close(relu.backward(torch.ones_like(x)), xr.grad)
    assert relu.backward(torch.ones_like(x))[0, 1] == 0.0


def test_softmax_ce_matches_torch(gen):
    z = torch.randn(6, 4, generator=gen, dtype=f64)
    y = torch.tensor([0, 3, 1, 1, 2, 0])
    ce = ManualSoftmaxCE()
    zr = z.clone().requires_grad_()
    loss = F.cross_entropy(zr, y)
    loss.backward()
    torch.testing.assert_close(ce(z, y), loss.detach())
    torch.testing.assert_close(ce.backward(), zr.grad)
    torch.testing.assert_close(ce.backward(2.0), 2 * zr.grad)


def test_sequential_matches_the_two_layer_reference(gen):
    net = ManualSequential(
        ManualLinear(8, 6, generator=gen, dtype=f64),
        ManualReLU(),
        ManualLinear(6, 3, generator=gen, dtype=f64),
    )
    ce = ManualSoftmaxCE()
    x = torch.randn(5, 8, generator=gen, dtype=f64)
    y = torch.tensor([0, 2, 1, 1, 0])
    loss = ce(net(x), y)
    net.backward(ce.backward())
    ref_loss, ref = two_layer_forward_backward(x, F.one_hot(y, 3).to(f64), *net.params())
    torch.testing.assert_close(loss, ref_loss)
    for got, name in zip(net.grads(), ["W1", "b1", "W2", "b2"], strict=True):
        torch.testing.assert_close(got, ref[name])
    assert net.param_names == ("0.W", "0.b", "2.W", "2.b")
    assert len(net) == 3 and isinstance(net[1], ManualReLU)


@pytest.mark.parametrize(
    "layer, extra",
    [
        (ManualLinear(5, 4, generator=torch.Generator().manual_seed(1), dtype=f64), ()),
        (ManualReLU(), ()),
        (ManualSoftmaxCE(), (torch.tensor([0, 4, 2]),)),
    ],
)
def test_dot_product_test_passes_for_every_layer(layer, extra, gen):
    x = torch.randn(3, 5, generator=gen, dtype=f64)
    results = dot_product_test(layer, x, *extra, generator=gen)
    for lhs, rhs in results.values():
        assert abs(lhs - rhs) <= 1e-7 * max(abs(lhs), abs(rhs), 1e-12)


def test_dot_product_test_catches_a_wrong_backward(gen):
    class WrongLinear(ManualLinear):
        def backward(self, grad_out):
            super().backward(grad_out)
            return grad_out @ self.W.T  # the transpose a square W does not catch by shape

    layer = WrongLinear(4, 4, generator=gen, dtype=f64)
    lhs, rhs = dot_product_test(layer, torch.randn(3, 4, generator=gen, dtype=f64), generator=gen)[
        "x"
    ]
    assert abs(lhs - rhs) > 1e-3 * abs(lhs)


def test_dot_product_test_restores_parameters(gen):
    layer = ManualLinear(3, 2, generator=gen, dtype=f64)
    before = [p.clone() for p in layer.params()]
    dot_product_test(layer, torch.randn(2, 3, generator=gen, dtype=f64), generator=gen)
    for p, q in zip(layer.params(), before, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-15)


def test_sgd_step_through_params_and_grads_updates_in_place(gen):
    net = ManualSequential(ManualLinear(4, 2, generator=gen))
    x, y = torch.randn(3, 4, generator=gen), torch.tensor([0, 1, 1])
    ce = ManualSoftmaxCE()
    before = ce(net(x), y)
    for _ in range(20):
        ce(net(x), y)
        net.backward(ce.backward())
        for p, g in zip(net.params(), net.grads(), strict=True):
            p -= 0.5 * g
    assert ce(net(x), y) < before


def test_modules_reject_bad_input(gen):
    layer = ManualLinear(3, 2, generator=gen)
    with pytest.raises(ValueError, match="in_f"):
        ManualLinear(0, 2)
    with pytest.raises(ValueError, match="x must be"):
        layer(torch.zeros(4, 5))
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(torch.zeros(4, 2))
    layer(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="grad_out"):
        layer.backward(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="y must be"):
        ManualSoftmaxCE()(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(TypeError, match="layers"):
        ManualSequential(torch.nn.ReLU())


def test_to_changes_dtype_of_parameters_and_gradients(gen):
    net = ManualSequential(ManualLinear(3, 2, generator=gen), ManualReLU()).to(dtype=f64)
    assert all(p.dtype == f64 for p in net.params() + net.grads())


# ---------------------------------------------------------------------------------------------
# Exercise check for the linear layer's VJP


def test_linear_vjp_check_catches_a_transposed_weight_on_square_layers():
    def wrong(x, W, grad_out):
        return (
            grad_out @ W.T if W.shape[0] == W.shape[1] else grad_out @ W,
            grad_out.T @ x,
            grad_out.sum(0),
        )

    with pytest.raises(WrongAnswerError, match="dot-product test"):
        check("ex-backprop-linear-vjp", wrong)


def test_linear_vjp_check_catches_a_mean_instead_of_a_sum():
    def wrong(x, W, grad_out):
        return grad_out @ W, grad_out.T @ x, grad_out.mean(0)

    with pytest.raises(WrongAnswerError, match="grad_b"):
        check("ex-backprop-linear-vjp", wrong)
