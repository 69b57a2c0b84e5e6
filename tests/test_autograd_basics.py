"""Tests for chapter 1.2's kernels: Dual, graph_text, global_grad_norm, plot_gradient_field,
and the messages of the chapter's exercise checks."""

import math

import matplotlib

matplotlib.use("Agg")  # tests only; never export MPLBACKEND for the book build

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlcourse.autograd import Dual, Value, graph_text  # noqa: E402
from dlcourse.exercises import WrongAnswerError, check  # noqa: E402
from dlcourse.plot import plot_gradient_field  # noqa: E402
from dlcourse.train import global_grad_norm  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Dual


def expression(a, b, c):
    """Every operation Dual supports, numbers on both sides, a shared subexpression u."""
    u = a * b + c / a - 2.0
    v = (u**2 + 1.0).log() + (-u).exp() * 0.5 - 3.0 / (1.0 + b**2)
    return v.tanh() + u.relu() * c + (1.0 - a) * (2.0 + c)


@pytest.mark.parametrize("point", [(0.5, 1.5, 2.0), (2.0, -0.3, 0.7), (1.2, 2.2, -1.1)])
def test_dual_tangents_match_torch_gradient(point):
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
    out = expression(*leaves)
    out.backward()
    for i, leaf in enumerate(leaves):  # one forward pass per input direction
        duals = [Dual(v, 1.0 if j == i else 0.0) for j, v in enumerate(point)]
        result = expression(*duals)
        assert math.isclose(result.value, out.item(), rel_tol=1e-13)
        assert math.isclose(result.tangent, leaf.grad.item(), rel_tol=1e-12, abs_tol=1e-13)


def test_dual_tangent_is_a_directional_derivative():
    point, direction = (0.5, 1.5, 2.0), (0.3, -1.0, 2.0)
    duals = [Dual(v, d) for v, d in zip(point, direction, strict=True)]
    grads = []
    for i in range(3):
        values = [Value(v) for v in point]
        expression(*values).backward()
        grads.append(values[i].grad)
    expected = sum(g * d for g, d in zip(grads, direction, strict=True))
    assert math.isclose(expression(*duals).tangent, expected, rel_tol=1e-12)


def test_dual_relu_derivative_at_zero_is_zero_and_constants_have_no_tangent():
    assert Dual(0.0, 1.0).relu().tangent == 0.0
    assert (Dual(2.0, 1.0) * 3 + 1).tangent == 3.0
    assert (5.0 - Dual(2.0, 1.0)).tangent == -1.0


def test_dual_rejects_bad_input():
    with pytest.raises(TypeError, match="value"):
        Dual("1")
    with pytest.raises(TypeError, match="tangent"):
        Dual(1.0, Dual(1.0))
    with pytest.raises(TypeError, match="exponent k"):
        Dual(1.0) ** Dual(2.0)
    with pytest.raises(ValueError, match="log"):
        Dual(0.0).log()
    with pytest.raises(ZeroDivisionError):
        Dual(1.0) / 0.0
    with pytest.raises(TypeError, match="cannot combine"):
        Dual(1.0) + "a"


# ---------------------------------------------------------------------------------------------
# graph_text


def scalar_example():
    w1, w2, b = (torch.tensor(v, requires_grad=True) for v in (2.0, 0.5, 1.0))
    x1, x2 = torch.tensor(-1.0), torch.tensor(3.0)
    return (w1 * x1 + w2 * x2 + b) ** 2, {"w1": w1, "w2": w2, "b": b}


def test_graph_text_lists_nodes_leaves_and_saved_values():
    loss, leaves = scalar_example()
    text = graph_text(loss, names=leaves)
    lines = text.splitlines()
    assert lines[0].startswith("PowBackward0") and "self=0.5" in lines[0]
    assert text.count("MulBackward0") == 2 and text.count("AddBackward0") == 2
    assert "other=-1" in text and "other=3" in text  # a product saves the other factor
    for name in leaves:
        assert f"leaf {name} ()" in text
    assert text.count("(no grad)") == 2  # x1 and x2 do not require grad
    assert lines[1].startswith("  AddBackward0")  # one level, two spaces


def test_graph_text_shows_freed_buffers_after_backward():
    loss, _ = scalar_example()
    loss.backward()
    assert "self=<freed>" in graph_text(loss)


def test_graph_text_marks_shared_nodes_and_stops_at_max_depth():
    x = torch.randn(5, requires_grad=True)
    y = torch.tanh(x)
    z = (y * y + y).sum()
    text = graph_text(z)
    assert text.count("TanhBackward0 (seen above)") == 2
    assert "saved: result=tensor(5,)" in text
    deep = x
    for _ in range(30):
        deep = deep * 1.01
    lines = graph_text(deep.sum(), max_depth=5).splitlines()
    assert "          ..." in lines  # cut at depth 5 (two spaces a level)
    assert max(len(line) - len(line.lstrip()) for line in lines) == 10


def test_graph_text_rejects_bad_input():
    with pytest.raises(ValueError, match="t has no grad_fn"):
        graph_text(torch.ones(2, requires_grad=True))
    with pytest.raises(TypeError, match="t must be a torch.Tensor"):
        graph_text([1.0])
    with pytest.raises(ValueError, match="max_depth"):
        graph_text(scalar_example()[0], max_depth=0)


# ---------------------------------------------------------------------------------------------
# global_grad_norm


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_global_grad_norm_matches_torch_and_concatenation(p):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    model(torch.randn(6, 4)).pow(2).sum().backward()
    grads = [q.grad for q in model.parameters()]
    expected = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]), ord=p)
    got = global_grad_norm(model.parameters(), p=p)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, torch.nn.utils.get_total_norm(grads, norm_type=p))


def test_global_grad_norm_skips_missing_grads_and_accepts_one_tensor():
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    (3 * a).sum().backward()
    assert global_grad_norm([a, b]).item() == pytest.approx(math.sqrt(18))
    assert global_grad_norm(a, p=math.inf).item() == 3.0
    assert global_grad_norm([b]).item() == 0.0


def test_global_grad_norm_rejects_bad_input():
    with pytest.raises(ValueError, match="p must be >= 1"):
        global_grad_norm([torch.zeros(1)], p=0.5)
    with pytest.raises(TypeError, match="params must hold tensors"):
        global_grad_norm([1.0])


# ---------------------------------------------------------------------------------------------
# plot_gradient_field


def test_gradient_field_arrows_are_minus_the_gradient():
    ax = plot_gradient_field(lambda x, y: x**2 + 4 * y**2, (-2, 2), (-1, 1), n=5)
    quiver = ax.collections[-1]
    assert isinstance(quiver, matplotlib.quiver.Quiver)
    assert quiver.N == 25
    X, Y = torch.tensor(quiver.X), torch.tensor(quiver.Y)
    torch.testing.assert_close(torch.tensor(quiver.U), -2 * X)
    torch.testing.assert_close(torch.tensor(quiver.V), -8 * Y)
    plt.close("all")


def test_gradient_field_rejects_bad_input():
    f = lambda x, y: x + y  # noqa: E731
    with pytest.raises(ValueError, match="xlim"):
        plot_gradient_field(f, (1, 0), (0, 1))
    with pytest.raises(ValueError, match="n must be"):
        plot_gradient_field(f, (0, 1), (0, 1), n=1)
    with pytest.raises(ValueError, match="f\\(x, y\\) must return"):
        plot_gradient_field(lambda x, y: (x + y).sum(), (0, 1), (0, 1))
    with pytest.raises(TypeError, match="f must be callable"):
        plot_gradient_field(3, (0, 1), (0, 1))
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# Exercise checks: wrong answers get teaching messages


def _wrong(exercise_id, answer, match):
    with pytest.raises(WrongAnswerError, match=match):
        check(exercise_id, answer)


def test_numerical_grad_check_catches_one_sided_and_halved_differences():
    def one_sided(f, x, eps=1e-6):
        flat, out = x.reshape(-1), torch.empty(x.numel(), dtype=x.dtype)
        base = f(x)
        for i in range(flat.numel()):
            bumped = flat.clone()
            bumped[i] += eps
            out[i] = (f(bumped.view_as(x)) - base) / eps
        return out.view_as(x)

    def halved(f, x, eps=1e-6):
        from dlcourse.autograd import numerical_grad

        return numerical_grad(f, x, eps) / 2

    _wrong("ex-autograd-numerical-grad", one_sided, "one-sided")
    _wrong("ex-autograd-numerical-grad", halved, "constant factor of about 0.5")
    _wrong("ex-autograd-numerical-grad", lambda f, x, eps=1e-6: x.flatten(), "shape")
    _wrong("ex-autograd-numerical-grad", lambda f, x, eps=1e-6: x.float(), "dtype")


def test_chain_rule_check_messages():
    t = 0.7
    _wrong("ex-autograd-chain-rule", -math.sin(t) * t**2, "only the path through x")
    _wrong("ex-autograd-chain-rule", math.cos(t) * 2 * t, "only the path through y")
    _wrong("ex-autograd-chain-rule", math.sin(t) * t**2 + math.cos(t) * 2 * t, "-sin t")
    _wrong("ex-autograd-chain-rule", 0.76, "values differ")
    _wrong("ex-autograd-chain-rule", "0.755", "a number")


def test_accumulation_check_messages():
    _wrong("ex-autograd-accumulation", [2.0, 2.0, 2.0], "second backward alone")
    _wrong("ex-autograd-accumulation", [3.0, 0.75, 12.0], "first backward alone")
    _wrong("ex-autograd-accumulation", [1.0, 2.0], "3 numbers")
    assert repr(check("ex-autograd-accumulation", torch.tensor([5.0, 2.75, 14.0])))[0] == "✔"


def test_leaves_check_messages():
    right = {"a": (True, False), "w": (True, True), "y": (False, False)}
    _wrong("ex-autograd-leaves", {**right, "a": (False, False)}, "every tensor you create")
    _wrong("ex-autograd-leaves", {**right, "y": (False, True)}, "retain_grad")
    _wrong("ex-autograd-leaves", {**right, "y": (True, False)}, "no leaf")
    _wrong("ex-autograd-leaves", {**right, "w": (True, False)}, "wrong values for \\['w'\\]")
    _wrong("ex-autograd-leaves", {"a": (True, False)}, "keys")
    _wrong("ex-autograd-leaves", {**right, "w": (1, 1)}, "pair of booleans")
    assert repr(check("ex-autograd-leaves", {k: list(v) for k, v in right.items()}))[0] == "✔"
