"""Chapter 3.2: pool2d against torch, receptive fields, LeNet-5, SimpleCNN, permute_pixels."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.conv import (
    empirical_receptive_field,
    pool2d,
    pool_output_size,
    receptive_field,
    receptive_field_support,
    unit_conv_stack,
)
from dlcourse.data import permute_pixels
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.nn import LeNet5, SimpleCNN

POOL_SETTINGS = [(2, None, 0), (3, 2, 1), (3, 1, 1), (2, 3, 1), (4, None, 2), (1, 1, 0)]


@pytest.mark.parametrize("k, stride, padding", POOL_SETTINGS)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool2d_matches_torch_with_gradients(k, stride, padding, mode):
    gen = torch.Generator().manual_seed(k * 10 + padding)
    x = torch.randn(2, 3, 11, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    ref = F.max_pool2d if mode == "max" else F.avg_pool2d
    ours, theirs = pool2d(x, k, stride, padding, mode), ref(x, k, stride, padding)
    torch.testing.assert_close(ours, theirs)
    g = torch.randn(ours.shape, generator=gen, dtype=torch.float64)
    (g_ours,) = torch.autograd.grad(ours, x, g)
    (g_theirs,) = torch.autograd.grad(theirs, x, g)
    torch.testing.assert_close(g_ours, g_theirs)


def test_pool2d_global_average_matches_adaptive_avg_pool():
    x = torch.randn(2, 4, 7, 7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(pool2d(x, 7, mode="avg"), F.adaptive_avg_pool2d(x, 1))


def test_pool2d_three_dims_and_default_stride():
    x = torch.randn(3, 28, 28, generator=torch.Generator().manual_seed(2))
    y = pool2d(x, 2)
    assert y.shape == (3, 14, 14) == nn.MaxPool2d(2)(x).shape
    assert pool_output_size(28, 2) == 14 and pool_output_size(7, 2) == 3
    assert pool_output_size(10, 3, stride=1, padding=1) == 10


def test_pool2d_hand_computed_case():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert pool2d(x, 2).flatten().tolist() == [5.0, 7.0, 13.0, 15.0]
    assert pool2d(x, 2, mode="avg").flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=torch.zeros(4, 4), k=2), "x must"),
        (dict(x=torch.zeros(1, 1, 4, 4, dtype=torch.long), k=2), "x must"),
        (dict(x=torch.zeros(1, 1, 4, 4), k=2, mode="median"), "mode"),
        (dict(x=torch.zeros(1, 1, 4, 4), k=0), "k must"),
        (dict(x=torch.zeros(1, 1, 4, 4), k=2, stride=0), "stride"),
        (dict(x=torch.zeros(1, 1, 4, 4), k=2, padding=2), "padding"),
        (dict(x=torch.zeros(1, 1, 4, 4), k=5), "does not fit"),
    ],
)
def test_pool2d_rejects_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        pool2d(**kwargs)


def test_receptive_field_known_stacks():
    assert receptive_field([]) == 1
    assert receptive_field([(3, 1, 1)] * 2) == 5
    assert receptive_field([(3, 1, 1)] * 3) == 7
    assert receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == 15
    vgg = [(3, 1, 1)] * 2 + [(2, 2, 1)] + [(3, 1, 1)] * 2 + [(2, 2, 1)]
    vgg += ([(3, 1, 1)] * 3 + [(2, 2, 1)]) * 2 + [(3, 1, 1)] * 3
    assert receptive_field(vgg) == 196


@pytest.mark.parametrize(
    "layers",
    [
        [(3, 1, 1)] * 3,
        [(3, 1, 1), (3, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)],
        [(3, 1, 1), (3, 1, 2), (3, 1, 4)],
        [(5, 2, 1), (3, 1, 2)],
    ],
)
def test_empirical_receptive_field_equals_formula(layers):
    net = unit_conv_stack(layers, pool="avg")
    assert empirical_receptive_field(net, (1, 45, 45)) == receptive_field(layers)


def test_max_pool_gradient_support_is_sparse():
    layers = [(3, 1, 1), (3, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)]
    gen = torch.Generator().manual_seed(0)
    avg = receptive_field_support(unit_conv_stack(layers, "avg"), (1, 41, 41), gen)
    mx = receptive_field_support(unit_conv_stack(layers, "max"), (1, 41, 41), gen)
    assert (avg > 0).sum() == 19 * 19 and (mx > 0).sum() < 19 * 19
    assert empirical_receptive_field(unit_conv_stack(layers, "max"), (1, 41, 41)) <= 19


def test_receptive_field_rejects_bad_input():
    with pytest.raises(TypeError, match="layers"):
        receptive_field((3, 1, 1))
    with pytest.raises(ValueError, match="layers"):
        receptive_field([(3, 1)])
    with pytest.raises(ValueError, match="layers"):
        receptive_field([(3, 0, 1)])
    with pytest.raises(ValueError, match="in_shape"):
        empirical_receptive_field(nn.Conv2d(1, 1, 3), (8, 8))
    with pytest.raises(TypeError, match="net"):
        empirical_receptive_field(3, (1, 8, 8))


def test_lenet5_parameters_and_shapes():
    assert sum(p.numel() for p in LeNet5().parameters()) == 61_706
    assert sum(p.numel() for p in LeNet5(fc=(120, 64)).parameters()) == 59_086
    assert LeNet5().shape_trace() == [32, 28, 14, 10, 5, 1]
    modern = LeNet5(act=nn.ReLU, pool="max", norm=True)
    assert modern(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert LeNet5(in_size=28)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lenet5_rejects_bad_input():
    with pytest.raises(ValueError, match="in_size"):
        LeNet5(in_size=64)
    with pytest.raises(ValueError, match="pool"):
        LeNet5(pool="min")
    with pytest.raises(ValueError, match="fc"):
        LeNet5(fc=(120,))
    with pytest.raises(ValueError, match="x must"):
        LeNet5()(torch.zeros(2, 1, 28, 28))


def test_simple_cnn_flattens_per_example():
    net = SimpleCNN(channels=(32, 64), img=28)
    assert net(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    feats = net.features(torch.zeros(49, 1, 16, 16))
    assert feats.view(-1, 64 * 7 * 7).shape[0] == 16  # the silent bug
    with pytest.raises(RuntimeError):
        net(torch.zeros(49, 1, 16, 16))  # flatten(1) keeps 49 rows; the head fails loudly
    with pytest.raises(ValueError, match="channels"):
        SimpleCNN(channels=(16,))


def test_permute_pixels_is_one_fixed_permutation():
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    xp, perm = permute_pixels(x, seed=1)
    assert xp.shape == x.shape
    torch.testing.assert_close(xp.flatten(1), x.flatten(1)[:, perm])
    assert torch.equal(torch.sort(perm).values, torch.arange(64))
    assert torch.equal(permute_pixels(x, seed=1)[1], perm)
    with pytest.raises(ValueError, match="X must"):
        permute_pixels(torch.zeros(5))


def test_exercise_checks_reject_wrong_answers():
    with pytest.raises(WrongAnswerError, match="own stride"):
        check(
            "ex-pool-receptive-field",
            lambda layers: (
                1
                + sum(
                    (k - 1) * d * int(torch.tensor([s for _, s, _ in layers[: i + 1]]).prod())
                    for i, (k, _, d) in enumerate(layers)
                )
            ),
        )
    with pytest.raises(WrongAnswerError, match="stride"):
        check("ex-pool-output-sizes", [27, 13, 6, 8, 28])
    with pytest.raises(WrongAnswerError, match="biases"):
        check(
            "ex-pool-lenet-count",
            {"shapes": [32, 28, 14, 10, 5, 1], "params_f6_84": 61_706 - 236,
             "params_f6_64": 59_086},
        )  # fmt: skip
    with pytest.raises(WrongAnswerError, match="inverse"):
        check("ex-pool-permuted-dense", lambda w, p: w[:, torch.argsort(p)])


def test_unit_conv_stack_builds_pools_and_rejects_bad_pool():
    net = unit_conv_stack([(3, 1, 1), (2, 2, 1)], pool="max", padding=1)
    assert isinstance(net[1], nn.MaxPool2d) and net[0].padding == (1, 1)
    assert torch.equal(net[0].weight, torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="pool"):
        unit_conv_stack([(3, 1, 1)], pool="min")
