"""Tests for the curvature kernels of dlcourse.autograd (chapter 2.2) and plot.plot_surface."""

import matplotlib

matplotlib.use("Agg")  # tests only; never export MPLBACKEND for the book build

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dlcourse.autograd import (  # noqa: E402
    classify_critical_point,
    hessian,
    hvp,
    negative_curvature_direction,
    newton_step,
    power_iteration,
)
from dlcourse.exercises import NotDoneError, WrongAnswerError, check  # noqa: E402
from dlcourse.plot import plot_surface  # noqa: E402

F64 = torch.float64


def neural_saddle(w):
    return (1 - w[0] * w[1]) ** 2


def rosenbrock_like(x):
    return (1 - x[0]) ** 2 + 10 * (x[1] - x[0] ** 2) ** 2 + torch.sin(x[2] * x[0]) + x[2] ** 4


def small_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = torch.randn(16, 3, dtype=F64)
    y = torch.randn(16, 1, dtype=F64)
    return net, x, y


def flat_params(net):
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def net_loss(net, x, y, theta):
    params, i = {}, 0
    for name, p in net.named_parameters():
        params[name] = theta[i : i + p.numel()].view_as(p)
        i += p.numel()
    out = torch.func.functional_call(net, params, (x,))
    return ((out - y) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# hessian


@pytest.mark.parametrize(
    "fn, point",
    [(neural_saddle, [0.0, 0.0]), (neural_saddle, [1.0, 1.0]), (rosenbrock_like, [0.3, -0.7, 1.1])],
)
def test_hessian_matches_torch(fn, point):
    x = torch.tensor(point, dtype=F64)
    torch.testing.assert_close(hessian(fn, x), torch.autograd.functional.hessian(fn, x))


def test_hessian_of_the_neural_saddle_by_hand():
    H = hessian(neural_saddle, torch.zeros(2, dtype=F64))
    torch.testing.assert_close(H, torch.tensor([[0.0, -2.0], [-2.0, 0.0]], dtype=F64))


def test_hessian_keeps_the_input_shape_and_handles_linear_functions():
    x = torch.randn(2, 3, dtype=F64)
    H = hessian(lambda t: (t**3).sum(), x)
    assert H.shape == (2, 3, 2, 3)
    torch.testing.assert_close(H, torch.autograd.functional.hessian(lambda t: (t**3).sum(), x))
    torch.testing.assert_close(
        hessian(lambda t: 3 * t.sum(), x), torch.zeros(2, 3, 2, 3, dtype=F64)
    )


def test_hessian_rejects_bad_input():
    with pytest.raises(TypeError, match="x must be"):
        hessian(neural_saddle, torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="fn must return a scalar"):
        hessian(lambda t: t**2, torch.zeros(2, dtype=F64))


# ---------------------------------------------------------------------------------------------
# hvp


def test_hvp_matches_torch_and_the_dense_hessian():
    net, x, y = small_net()
    params = list(net.parameters())
    g = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=g, dtype=F64) for p in params]
    got = torch.cat([h.reshape(-1) for h in hvp(lambda: ((net(x) - y) ** 2).mean(), params, v)])
    theta, v_flat = flat_params(net), torch.cat([t.reshape(-1) for t in v])
    _, expected = torch.autograd.functional.hvp(lambda t: net_loss(net, x, y, t), theta, v_flat)
    torch.testing.assert_close(got, expected)
    dense = hessian(lambda t: net_loss(net, x, y, t), theta)
    torch.testing.assert_close(got, dense @ v_flat)


def test_hvp_of_a_parameter_the_loss_ignores_is_zero():
    a = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    unused = torch.tensor([3.0], dtype=F64, requires_grad=True)
    out = hvp(
        lambda: (a**3).sum(), [a, unused], [torch.ones(2, dtype=F64), torch.ones(1, dtype=F64)]
    )
    torch.testing.assert_close(out[0], 6 * a.detach())
    torch.testing.assert_close(out[1], torch.zeros(1, dtype=F64))


def test_hvp_rejects_bad_input():
    a = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="v must hold one tensor per parameter"):
        hvp(lambda: (a**2).sum(), [a], [])
    with pytest.raises(ValueError, match=r"v\[0\] must have the shape"):
        hvp(lambda: (a**2).sum(), [a], [torch.ones(3)])
    with pytest.raises(ValueError, match="requires_grad"):
        hvp(lambda: (a**2).sum(), [torch.ones(2)], [torch.ones(2)])
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        hvp(lambda: a**2, [a], [torch.ones(2)])


# ---------------------------------------------------------------------------------------------
# power_iteration


def symmetric(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=F64))
    return Q @ torch.diag(torch.tensor(eigs, dtype=F64)) @ Q.T


def test_power_iteration_finds_the_largest_magnitude_not_the_largest():
    A = torch.diag(torch.tensor([-3.0, 1.0, 2.0], dtype=F64))
    value, v = power_iteration(lambda u: A @ u, 3, iters=200)
    assert value == pytest.approx(-3.0, abs=1e-8)
    assert abs(v[0].item()) == pytest.approx(1.0, abs=1e-6)


def test_shifted_power_iteration_finds_the_most_negative_eigenvalue():
    A = symmetric([-1.0, -0.2, 0.5, 1.5, 3.0], seed=3)
    top, _ = power_iteration(lambda u: A @ u, 5, iters=300)
    bottom, v = power_iteration(lambda u: A @ u, 5, iters=500, shift=top)
    eigs = torch.linalg.eigvalsh(A)
    assert top == pytest.approx(eigs[-1].item(), abs=1e-8)
    assert bottom == pytest.approx(eigs[0].item(), abs=1e-8)
    torch.testing.assert_close(A @ v, bottom * v, atol=1e-6, rtol=0)


def test_power_iteration_is_seeded_and_respects_dtype():
    A = symmetric([0.5, 1.0, 4.0], seed=4)
    first = power_iteration(lambda u: A.float() @ u, 3, iters=5, seed=7, dtype=torch.float32)
    second = power_iteration(lambda u: A.float() @ u, 3, iters=5, seed=7, dtype=torch.float32)
    assert first[0] == second[0] and first[1].dtype == torch.float32


def test_power_iteration_rejects_bad_input():
    A = torch.eye(3, dtype=F64)
    with pytest.raises(ValueError, match="dim"):
        power_iteration(lambda u: A @ u, 0)
    with pytest.raises(ValueError, match="iters"):
        power_iteration(lambda u: A @ u, 3, iters=0)
    with pytest.raises(ValueError, match="matvec must return"):
        power_iteration(lambda u: u[:2], 3)


# ---------------------------------------------------------------------------------------------
# classify_critical_point, newton_step, negative_curvature_direction


@pytest.mark.parametrize(
    "eigs, kind",
    [
        ([2.0, 2.0], "min"),
        ([-1.0, -3.0], "max"),
        ([2.0, -2.0], "saddle"),
        ([0.0, 4.0, -1.0], "saddle"),  # a zero eigenvalue does not hide mixed signs
        ([0.0, 4.0], "degenerate"),
        ([0.0, -4.0], "degenerate"),
        ([0.0, 0.0], "degenerate"),
    ],
)
def test_classify_critical_point(eigs, kind):
    assert classify_critical_point(symmetric(eigs, seed=5)) == kind


def test_classify_rejects_non_symmetric_and_non_square():
    with pytest.raises(ValueError, match="H must be symmetric"):
        classify_critical_point(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="H must be a square"):
        classify_critical_point(torch.ones(2, 3))


def test_newton_step_lands_on_the_saddle_of_a_quadratic():
    p = torch.tensor([1.0, 0.5], dtype=F64)
    grad = torch.tensor([2.0, -1.0], dtype=F64)  # gradient of x^2 - y^2 at p
    H = torch.diag(torch.tensor([2.0, -2.0], dtype=F64))
    torch.testing.assert_close(p + newton_step(grad, H), torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="grad must have shape"):
        newton_step(torch.ones(3, dtype=F64), H)


def test_negative_curvature_direction_of_the_neural_saddle():
    value, v = negative_curvature_direction(torch.tensor([[0.0, -2.0], [-2.0, 0.0]], dtype=F64))
    assert value == pytest.approx(-2.0)
    torch.testing.assert_close(v, torch.tensor([1.0, 1.0], dtype=F64) / 2**0.5)


# ---------------------------------------------------------------------------------------------
# plot_surface


def test_plot_surface_contour_and_3d():
    ax = plot_surface(lambda X, Y: X**2 - Y**2, (-1, 1), (-1, 1), n=21)
    assert ax.get_xlim() == (-1.0, 1.0)
    ax3 = plot_surface(lambda X, Y: X**2 - Y**2, (-1, 1), (-2, 2), kind="3d", n=11)
    assert ax3.name == "3d"
    with pytest.raises(ValueError, match="kind"):
        plot_surface(lambda X, Y: X, (-1, 1), (-1, 1), kind="heat")
    with pytest.raises(ValueError, match="xlim"):
        plot_surface(lambda X, Y: X, (1, -1), (-1, 1))
    with pytest.raises(ValueError, match="f"):
        plot_surface(lambda X, Y: X[0], (-1, 1), (-1, 1), n=5)
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# exercise checks: wrong answers get a teaching message


def test_classify_check_explains_a_saddle_taken_for_a_maximum():
    with pytest.raises(WrongAnswerError, match="saddle"):
        check("ex-landscape-classify", {(1, 0): "min", (-1, 0): "max"})
    with pytest.raises(WrongAnswerError, match="wrong values"):
        check("ex-landscape-classify", {(1, 0): "degenerate", (-1, 0): "saddle"})
    assert repr(check("ex-landscape-classify", {(1.0, 0.0): "min", (-1, 0): "saddle"}))[0] == "✔"


def test_valley_check_rejects_min_and_the_saddle_eigenvalues():
    with pytest.raises(WrongAnswerError, match="singular"):
        check("ex-landscape-valley", ([0.0, 4.0], "min"))
    with pytest.raises(WrongAnswerError, match="saddle"):
        check("ex-landscape-valley", ([-2.0, 2.0], "saddle"))
    with pytest.raises(NotDoneError):
        check("ex-landscape-valley", (..., ...))


def test_min_eig_check_catches_plain_power_iteration():
    def plain(matvec, dim):
        return power_iteration(matvec, dim, iters=500)[0]

    with pytest.raises(WrongAnswerError, match="largest"):
        check("ex-landscape-min-eig", plain)


def test_min_eig_check_catches_a_forgotten_shift():
    def shifted_only(matvec, dim):
        top = power_iteration(matvec, dim, iters=300)[0]
        v = power_iteration(matvec, dim, iters=1000, shift=abs(top))[1]
        return float(v @ matvec(v)) - abs(top)

    with pytest.raises(WrongAnswerError, match="shift"):
        check("ex-landscape-min-eig", shifted_only)


def test_newton_check_names_the_gradient_step_and_saddle_free_newton():
    with pytest.raises(WrongAnswerError, match="gradient step"):
        check("ex-landscape-newton", [-1.0, 1.0])
    with pytest.raises(WrongAnswerError, match="saddle-free"):
        check("ex-landscape-newton", torch.tensor([0.0, 1.0]))
    with pytest.raises(WrongAnswerError, match="two numbers"):
        check("ex-landscape-newton", [0.0, 0.0, 0.0])
