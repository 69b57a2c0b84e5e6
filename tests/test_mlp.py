"""Tests for chapter 1.4's kernels: activations, MLP, perceptron, piecewise-linear networks,
feature maps and kernels (dlcourse.nn), intrinsic dimension (dlcourse.data), parameter counts
and linear probes (dlcourse.train), and the two plot helpers (dlcourse.plot)."""

import matplotlib

matplotlib.use("Agg")  # tests only; never export MPLBACKEND for the book build

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from dlcourse import nn as dnn  # noqa: E402
from dlcourse.data import two_nn_intrinsic_dimension  # noqa: E402
from dlcourse.exercises import WrongAnswerError, check  # noqa: E402
from dlcourse.plot import plot_decision_boundary, plot_functions  # noqa: E402
from dlcourse.train import count_params, linear_probe  # noqa: E402

f64 = torch.float64

PAIRS = {
    "sigmoid": (dnn.sigmoid, torch.sigmoid),
    "tanh": (dnn.tanh, torch.tanh),
    "relu": (dnn.relu, F.relu),
    "leaky_relu": (dnn.leaky_relu, F.leaky_relu),
    "leaky_relu_0.2": (lambda x: dnn.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    "elu": (dnn.elu, F.elu),
    "elu_0.5": (lambda x: dnn.elu(x, 0.5), lambda x: F.elu(x, 0.5)),
    "selu": (dnn.selu, F.selu),
    "swish": (dnn.swish, F.silu),
    "mish": (dnn.mish, F.mish),
    "softplus": (dnn.softplus, F.softplus),
    "gelu": (dnn.gelu, F.gelu),
    "gelu_tanh": (lambda x: dnn.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
}


def _grid(dtype):
    extremes = torch.tensor([-500.0, -60.0, -1e-12, 0.0, 1e-12, 60.0, 500.0], dtype=dtype)
    return torch.cat([torch.linspace(-6, 6, 241, dtype=dtype), extremes])


@pytest.mark.parametrize("dtype", [torch.float32, f64])
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_activation_and_its_gradient_match_torch(name, dtype):
    mine, ref = PAIRS[name]
    x_mine, x_ref = _grid(dtype).requires_grad_(), _grid(dtype).requires_grad_()
    y_mine, y_ref = mine(x_mine), ref(x_ref)
    y_mine.sum().backward()
    y_ref.sum().backward()
    assert y_mine.dtype == dtype
    torch.testing.assert_close(y_mine, y_ref)
    torch.testing.assert_close(x_mine.grad, x_ref.grad)


def test_swish_beta_interpolates_between_half_x_and_relu():
    x = torch.linspace(-3, 3, 61, dtype=f64)
    torch.testing.assert_close(dnn.swish(x, beta=0.0), x / 2)
    torch.testing.assert_close(dnn.swish(x, beta=50.0), F.relu(x), atol=1e-3, rtol=0)
    torch.testing.assert_close(dnn.swish(x, beta=2.0), x * torch.sigmoid(2 * x))


def test_prelu_matches_torch_shared_and_per_channel():
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(dnn.prelu(x, 0.25), F.prelu(x, torch.tensor([0.25])))
    a = torch.tensor([0.1, 0.2, 0.3])
    torch.testing.assert_close(dnn.prelu(x, a), F.prelu(x, a))
    with pytest.raises(ValueError, match="a must be"):
        dnn.prelu(x, torch.tensor([0.1, 0.2]))


def test_activations_reject_bad_input():
    with pytest.raises(TypeError, match="x must be a floating-point"):
        dnn.relu(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        dnn.sigmoid([1.0, 2.0])
    with pytest.raises(ValueError, match="approximate"):
        dnn.gelu(torch.zeros(2), approximate="erf")
    with pytest.raises(ValueError, match="alpha"):
        dnn.leaky_relu(torch.zeros(2), alpha=-0.1)


def test_sigmoid_derivative_is_a_quarter_at_zero_and_tiny_at_ten():
    x = torch.tensor([-10.0, 0.0, 10.0], dtype=f64, requires_grad=True)
    dnn.sigmoid(x).sum().backward()
    assert x.grad[1] == 0.25
    assert (x.grad[[0, 2]] < 5e-5).all()


def test_mlp_shapes_parameter_count_and_linear_output():
    model = dnn.MLP(784, [256, 256], 10)
    assert count_params(model) == 269_322
    x = torch.randn(5, 784)
    assert model(x).shape == (5, 10) and model.features(x).shape == (5, 256)
    assert isinstance(model.out, nn.Linear)
    regressor = dnn.MLP(1, [8], 1)
    with torch.no_grad():
        regressor.out.bias.fill_(-100.0)
    assert (regressor(torch.randn(4, 1)) < 0).all()  # no activation after the output layer
    assert count_params(dnn.MLP(3, [], 2)) == 8  # no hidden layer: one Linear(3, 2)


def test_mlp_options_add_norm_and_dropout_layers():
    layer_norm = dnn.MLP(4, [8, 8], 2, act=nn.GELU, norm="layer", dropout=0.1)
    kinds = [type(m) for m in layer_norm.hidden[0]]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.GELU, nn.Dropout]
    batch_norm = dnn.MLP(4, [8], 2, norm="batch")
    assert isinstance(batch_norm.hidden[0][1], nn.BatchNorm1d)
    assert batch_norm(torch.randn(6, 4)).shape == (6, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hidden": [4, 0]}, ValueError, "hidden"),
        ({"norm": "group"}, ValueError, "norm"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"act": torch.relu}, TypeError, "act"),
        ({"in_dim": 0}, ValueError, "in_dim"),
    ],
)
def test_mlp_rejects_bad_arguments(kwargs, error, match):
    args = {"in_dim": 2, "hidden": [4], "out_dim": 1, **kwargs}
    with pytest.raises(error, match=match):
        dnn.MLP(**args)


def test_mlp_features_checks_the_input_shape():
    with pytest.raises(ValueError, match=r"x must be \(B, 3\)"):
        dnn.MLP(3, [4], 2).features(torch.randn(2, 4))


def test_perceptron_learns_and_or_but_not_xor():
    bits = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    for y in ([0, 0, 0, 1], [0, 1, 1, 1]):
        w, b, history = dnn.perceptron_train(bits, torch.tensor(y))
        assert history[-1] == 1.0
        assert torch.equal((bits @ w + b > 0).long(), torch.tensor(y))
    _, _, history = dnn.perceptron_train(bits, torch.tensor([0, 1, 1, 0]), epochs=50)
    assert len(history) == 50 and max(history) < 1.0
    with pytest.raises(ValueError, match="y must contain only"):
        dnn.perceptron_train(bits, torch.tensor([0, 2, 1, 0]))
    with pytest.raises(ValueError, match="X must be"):
        dnn.perceptron_train(bits[0], torch.tensor([0]))


def test_tent_map_net_is_the_composed_tent_map():
    x = torch.linspace(0, 1, 1001, dtype=f64).unsqueeze(1)

    def tent(u):
        return 2 * F.relu(u) - 4 * F.relu(u - 0.5)

    expected = x
    for depth in range(1, 6):
        expected = tent(expected)
        torch.testing.assert_close(dnn.tent_map_net(depth).double()(x), expected)
        assert dnn.count_linear_pieces(dnn.tent_map_net(depth)) == 2**depth
    assert count_params(dnn.tent_map_net(3)) == 4 + 6 + 6 + 3
    with pytest.raises(ValueError, match="depth"):
        dnn.tent_map_net(0)


def test_count_linear_pieces_on_known_functions():
    assert dnn.count_linear_pieces(lambda x: 3 * x + 1) == 1
    assert dnn.count_linear_pieces(lambda x: x.abs(), -1.0, 1.0, n=2001) == 2  # kink on a node
    assert dnn.count_linear_pieces(lambda x: (x - 0.3337).abs(), n=1000) == 2  # inside a cell
    steps = torch.tensor([0.2, 0.5, 0.7], dtype=f64)
    assert dnn.count_linear_pieces(lambda x: F.relu(x - steps).sum(1)) == 4
    with pytest.raises(ValueError, match="hi must be > lo"):
        dnn.count_linear_pieces(lambda x: x, 1.0, 0.0)
    with pytest.raises(ValueError, match="f must return"):
        dnn.count_linear_pieces(lambda x: x[:5], n=11)


def test_one_hidden_layer_has_at_most_width_plus_one_pieces():
    torch.manual_seed(0)
    for m in (3, 10, 30):
        net = nn.Sequential(nn.Linear(1, m), nn.ReLU(), nn.Linear(m, 1))
        assert dnn.count_linear_pieces(net, -5.0, 5.0) <= m + 1


def test_poly2_features_inner_product_is_the_squared_dot_product():
    g = torch.Generator().manual_seed(0)
    for d in (2, 3, 5):
        x, z = torch.randn(7, d, generator=g, dtype=f64), torch.randn(4, d, generator=g, dtype=f64)
        phi_x, phi_z = dnn.poly2_features(x), dnn.poly2_features(z)
        assert phi_x.shape == (7, d + d * (d - 1) // 2)
        torch.testing.assert_close(phi_x @ phi_z.T, (x @ z.T) ** 2)
        torch.testing.assert_close(dnn.poly_kernel(x, z), (x @ z.T) ** 2)
    x2 = torch.tensor([[1.0, 2.0]])
    torch.testing.assert_close(dnn.poly2_features(x2), torch.tensor([[1.0, 4.0, 2 * 2**0.5]]))
    with pytest.raises(ValueError, match=r"x must be \(N, D\)"):
        dnn.poly2_features(torch.zeros(3))


def test_kernels_and_mercer_condition():
    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(30, 3, generator=g, dtype=f64), torch.randn(20, 3, generator=g, dtype=f64)
    expected = torch.exp(-0.5 * torch.cdist(x, z) ** 2)
    torch.testing.assert_close(dnn.rbf_kernel(x, z, gamma=0.5), expected)
    torch.testing.assert_close(dnn.poly_kernel(x, z, degree=3, c=1.0), (x @ z.T + 1) ** 3)
    assert dnn.is_psd(dnn.rbf_kernel(x, x, gamma=2.0))
    assert dnn.is_psd(dnn.poly_kernel(x, x))
    assert not dnn.is_psd(-torch.cdist(x, x))
    assert not dnn.is_psd(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))  # not symmetric
    with pytest.raises(ValueError, match="K must be a square"):
        dnn.is_psd(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="gamma"):
        dnn.rbf_kernel(x, z, gamma=0.0)
    with pytest.raises(ValueError, match="X and Z"):
        dnn.poly_kernel(x, z[:, :2])


def test_two_nn_finds_the_dimension_of_flat_sets():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=f64))[0]
    for d in (1, 2, 4):
        points = torch.rand(2000, d, generator=g, dtype=f64) @ basis[:d]  # a d-cube in R^6
        assert abs(two_nn_intrinsic_dimension(points) - d) < 0.25 * d
    with pytest.raises(ValueError, match=r"X must be \(N, D\)"):
        two_nn_intrinsic_dimension(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="X must be a floating-point"):
        two_nn_intrinsic_dimension(torch.zeros(5, 2, dtype=torch.int64))


def test_count_params_trainable_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert count_params(model) == 16 + 10
    assert count_params(model, trainable_only=True) == 10
    with pytest.raises(TypeError, match="model"):
        count_params(torch.zeros(3))


def test_linear_probe_separates_separable_classes_and_not_xor():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = torch.randint(0, 3, (300,), generator=g)
    x = centres[y] + 0.5 * torch.randn(300, 2, generator=g)
    assert linear_probe(x[:200], y[:200], x[200:], y[200:]) > 0.97
    x_xor = 2 * torch.rand(400, 2, generator=g) - 1
    y_xor = (x_xor[:, 0] * x_xor[:, 1] > 0).long()
    assert linear_probe(x_xor[:200], y_xor[:200], x_xor[200:], y_xor[200:]) < 0.7
    with pytest.raises(ValueError, match="train_y must be int64"):
        linear_probe(x, y.float(), x, y)
    with pytest.raises(ValueError, match="same width"):
        linear_probe(x, y, x[:, :1], y)


def test_plot_functions_and_decision_boundary():
    fig = plot_functions(
        {"relu": dnn.relu, "tanh": dnn.tanh, "gelu": dnn.gelu}, torch.linspace(-3, 3, 50), ncols=2
    )
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 4  # f, f', two axis lines
    with pytest.raises(ValueError, match="elementwise"):
        plot_functions({"sum": lambda x: x.sum()}, torch.linspace(-1, 1, 5))
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    model = nn.Linear(2, 2)
    model.train()
    ax = plot_decision_boundary(model, x, y, grid=20)
    assert model.training and len(ax.collections) >= 2
    plot_decision_boundary(lambda p: p[:, 0], x, y, grid=20)  # one score per point
    with pytest.raises(ValueError, match=r"X must be \(N, 2\)"):
        plot_decision_boundary(model, torch.randn(5, 3), y[:5])
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# Wrong answers to the chapter's exercises get a teaching message


def _activations_with(**overrides):
    answers = {"elu": F.elu, "selu": F.selu, "silu": F.silu, "mish": F.mish, "gelu": F.gelu}
    return {**answers, **overrides}


def test_activation_check_explains_common_mistakes():
    assert "match" in repr(check("ex-mlp-activations", _activations_with()))
    with pytest.raises(WrongAnswerError, match="approximation"):
        check(
            "ex-mlp-activations",
            _activations_with(gelu=lambda x: F.gelu(x, approximate="tanh")),
        )

    def selu_four_decimals(x):
        return 1.0507 * torch.where(x > 0, x, 1.6733 * (torch.exp(x) - 1))

    with pytest.raises(WrongAnswerError, match="full constants"):
        check("ex-mlp-activations", _activations_with(selu=selu_four_decimals))
    with pytest.raises(WrongAnswerError, match="dtype"):
        check("ex-mlp-activations", _activations_with(elu=lambda x: F.elu(x.double())))
    with pytest.raises(WrongAnswerError, match="missing"):
        check("ex-mlp-activations", {"elu": F.elu})


def test_collapse_check_explains_common_mistakes():
    def wrong_order(lin1, lin2):
        return lin1.weight @ lin2.weight, lin2.weight @ lin1.bias + lin2.bias

    def forgets_first_bias(lin1, lin2):
        return lin2.weight @ lin1.weight, lin2.bias

    def transposed(lin1, lin2):
        return (lin2.weight @ lin1.weight).T, lin2.weight @ lin1.bias + lin2.bias

    with pytest.raises(WrongAnswerError, match="W2 @ W1|shape|raised"):
        check("ex-mlp-collapse", wrong_order)
    with pytest.raises(WrongAnswerError, match="b = W2 @ b1 \\+ b2"):
        check("ex-mlp-collapse", forgets_first_bias)
    with pytest.raises(WrongAnswerError, match="transposed"):
        check("ex-mlp-collapse", transposed)


def test_xor_and_pieces_checks_explain_common_mistakes():
    with pytest.raises(WrongAnswerError, match="no line classifies"):
        check("ex-mlp-xor-grid", 1.0)
    with pytest.raises(WrongAnswerError, match="better than half"):
        check("ex-mlp-xor-grid", 0.5)
    with pytest.raises(WrongAnswerError, match="number"):
        check("ex-mlp-xor-grid", "0.75")
    with pytest.raises(WrongAnswerError, match="off by one"):
        check("ex-mlp-pieces", (64, 64))
    with pytest.raises(WrongAnswerError, match="double"):
        check("ex-mlp-pieces", (12, 11))
    with pytest.raises(WrongAnswerError, match="pair"):
        check("ex-mlp-pieces", 64)
