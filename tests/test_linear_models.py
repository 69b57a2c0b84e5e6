"""Tests for chapter 1.3's kernels: regression and binary losses, likelihoods, information
quantities (dlcourse.losses), empirical_fisher (dlcourse.autograd), synthetic_linear
(dlcourse.data), and the chapter's exercise checks."""

import math

import pytest
import torch
import torch.nn.functional as F

from dlcourse.autograd import empirical_fisher
from dlcourse.data import synthetic_linear
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.losses import (
    bce_with_logits,
    cross_entropy_dist,
    entropy,
    focal_loss,
    gaussian_nll,
    grad_wrt_logits,
    hinge,
    huber,
    kl_divergence,
    laplace_nll,
    mae,
    mse,
)

G = torch.Generator().manual_seed(0)
Y_HAT = torch.randn(7, 3, generator=G, dtype=torch.float64)
Y = torch.randn(7, 3, generator=G, dtype=torch.float64)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_mae_match_torch(reduction):
    torch.testing.assert_close(mse(Y_HAT, Y, reduction), F.mse_loss(Y_HAT, Y, reduction=reduction))
    torch.testing.assert_close(mae(Y_HAT, Y, reduction), F.l1_loss(Y_HAT, Y, reduction=reduction))


def test_mse_rejects_broadcasting_shapes():
    with pytest.raises(ValueError, match="y_hat and y"):
        mse(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(TypeError, match="y"):
        mae(torch.zeros(4), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="reduction"):
        mse(torch.zeros(4), torch.zeros(4), reduction="max")


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_matches_torch_and_smooth_l1(delta):
    e = 4 * torch.randn(50, generator=G, dtype=torch.float64)
    zero = torch.zeros_like(e)
    torch.testing.assert_close(
        huber(e, delta), F.huber_loss(e, zero, reduction="none", delta=delta)
    )
    torch.testing.assert_close(
        huber(e, delta) / delta, F.smooth_l1_loss(e, zero, reduction="none", beta=delta)
    )
    torch.testing.assert_close(huber(e, delta, "mean"), F.huber_loss(e, zero, delta=delta))


def test_huber_of_known_errors():
    e = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    torch.testing.assert_close(huber(e, delta=2.0), torch.tensor([4.0, 2, 0.5, 0, 0.5, 2, 4]))
    with pytest.raises(ValueError, match="delta"):
        huber(e, delta=0.0)


def test_hinge_matches_multi_margin_loss_for_two_classes():
    s = torch.randn(20, generator=G, dtype=torch.float64)
    y = torch.where(torch.rand(20, generator=G) < 0.5, -1, 1)
    # two classes with logits (-s/2, s/2): multi_margin_loss = max(0, 1 - y s) / 2
    logits = torch.stack([-s / 2, s / 2], dim=1)
    expected = 2 * F.multi_margin_loss(logits, (y + 1) // 2, reduction="none")
    torch.testing.assert_close(hinge(s, y, reduction="none"), expected)
    with pytest.raises(ValueError, match="y"):
        hinge(s, torch.zeros(20))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_torch(reduction):
    z = 30 * torch.randn(40, generator=G, dtype=torch.float64)
    y = torch.rand(40, generator=G, dtype=torch.float64)
    torch.testing.assert_close(
        bce_with_logits(z, y, reduction),
        F.binary_cross_entropy_with_logits(z, y, reduction=reduction),
    )


def test_bce_with_logits_is_exact_where_bce_on_probabilities_clamps():
    z, y = torch.tensor([200.0]), torch.tensor([0.0])
    torch.testing.assert_close(bce_with_logits(z, y), torch.tensor(200.0))
    assert F.binary_cross_entropy(torch.sigmoid(z), y).item() == pytest.approx(100.0)


def _focal_reference(z, y, alpha, gamma):
    """Straight from the definition -alpha_t (1 - p_t)^gamma log p_t, in float64."""
    p = torch.sigmoid(z)
    p_t = torch.where(y == 1, p, 1 - p)
    alpha_t = torch.where(y == 1, alpha, 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * torch.log(p_t)


def test_focal_loss_matches_its_definition():
    z = 3 * torch.randn(8, 4, generator=G, dtype=torch.float64)
    y = (torch.rand(8, 4, generator=G) < 0.3).double()
    for alpha, gamma in ((0.25, 2.0), (0.5, 0.5), (0.9, 5.0)):
        expected = _focal_reference(z, y, alpha, gamma)
        torch.testing.assert_close(focal_loss(z, y, alpha, gamma, "none"), expected)
        torch.testing.assert_close(focal_loss(z, y, alpha, gamma), expected.sum())


def test_focal_loss_reduces_to_bce_at_gamma_zero():
    z = 3 * torch.randn(30, generator=G, dtype=torch.float64)
    y = (torch.rand(30, generator=G) < 0.5).double()
    torch.testing.assert_close(
        focal_loss(z, y, alpha=None, gamma=0.0, reduction="mean"), bce_with_logits(z, y)
    )
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(z, y, gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(z, y, alpha=1.5)


def test_gaussian_and_laplace_nll_match_torch_distributions():
    sigma, b = 0.7, 1.3
    normal = -torch.distributions.Normal(Y_HAT, sigma).log_prob(Y)
    laplace = -torch.distributions.Laplace(Y_HAT, b).log_prob(Y)
    torch.testing.assert_close(gaussian_nll(Y_HAT, Y, sigma, "none"), normal)
    torch.testing.assert_close(laplace_nll(Y_HAT, Y, b, "none"), laplace)
    var = torch.full_like(Y, sigma**2)
    torch.testing.assert_close(
        gaussian_nll(Y_HAT, Y, sigma), F.gaussian_nll_loss(Y_HAT, Y, var, full=True)
    )
    with pytest.raises(ValueError, match="sigma"):
        gaussian_nll(Y_HAT, Y, sigma=0.0)
    with pytest.raises(ValueError, match="b"):
        laplace_nll(Y_HAT, Y, b=-1.0)


def test_information_quantities_match_torch():
    p = torch.softmax(torch.randn(5, 6, generator=G, dtype=torch.float64), dim=1)
    q = torch.softmax(torch.randn(5, 6, generator=G, dtype=torch.float64), dim=1)
    torch.testing.assert_close(entropy(p), torch.distributions.Categorical(probs=p).entropy())
    torch.testing.assert_close(kl_divergence(p, q), F.kl_div(q.log(), p, reduction="none").sum(1))
    torch.testing.assert_close(cross_entropy_dist(p, q), entropy(p) + kl_divergence(p, q))
    torch.testing.assert_close(kl_divergence(p, p), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(entropy(p.T, dim=0), entropy(p))


def test_information_quantities_handle_zeros():
    p = torch.tensor([0.5, 0.5, 0.0])
    assert entropy(p).item() == pytest.approx(math.log(2))
    assert math.isinf(cross_entropy_dist(p, torch.tensor([1.0, 0.0, 0.0])).item())
    with pytest.raises(ValueError, match="p"):
        entropy(torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence(p, torch.ones(2) / 2)


@pytest.mark.parametrize("kind", ["ce", "mse"])
def test_grad_wrt_logits_matches_autograd(kind):
    z = 3 * torch.randn(6, 4, generator=G, dtype=torch.float64)
    target = torch.tensor([0, 3, 1, 1, 2, 0])
    leaf = z.clone().requires_grad_()
    if kind == "ce":
        loss = F.cross_entropy(leaf, target, reduction="sum")
    else:
        loss = ((torch.softmax(leaf, 1) - F.one_hot(target, 4)) ** 2).sum()
    loss.backward()
    torch.testing.assert_close(grad_wrt_logits(kind, z, target), leaf.grad)


def test_grad_wrt_logits_of_known_points():
    z = torch.tensor([[0.0, 0.0, 0.0], [-10.0, 10.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 0])
    ce = grad_wrt_logits("ce", z, target).norm(dim=1)
    mse_norm = grad_wrt_logits("mse", z, target).norm(dim=1)
    assert ce[0].item() == pytest.approx(math.sqrt(6) / 3)
    assert mse_norm[0].item() == pytest.approx(2 / 3 * math.sqrt(6) / 3)
    assert mse_norm[1] / ce[1] < 1e-3
    with pytest.raises(ValueError, match="kind"):
        grad_wrt_logits("l1", z, target)
    with pytest.raises(ValueError, match="target"):
        grad_wrt_logits("ce", z, torch.tensor([0, 3]))


def test_empirical_fisher_of_bernoulli_and_gaussian():
    g = torch.Generator().manual_seed(1)
    theta = torch.tensor([0.3], dtype=torch.float64)
    x = torch.bernoulli(torch.full((50_000,), 0.3, dtype=torch.float64), generator=g)

    def bernoulli(t, x):
        return x * t.log() + (1 - x) * torch.log1p(-t)

    score, fisher = empirical_fisher(bernoulli, theta, x)
    assert abs(score.item()) < 0.03
    assert fisher.item() == pytest.approx(1 / (0.3 * 0.7), rel=0.03)

    mu_sigma = torch.tensor([0.5, 2.0], dtype=torch.float64)
    x = 0.5 + 2.0 * torch.randn(50_000, generator=g, dtype=torch.float64)

    def normal(t, x):
        return torch.distributions.Normal(t[0], t[1]).log_prob(x)

    score, fisher = empirical_fisher(normal, mu_sigma, x)
    assert score.shape == (2,) and fisher.shape == (2, 2)
    torch.testing.assert_close(fisher, torch.diag(torch.tensor([0.25, 0.5])).double(), atol=0.02,
                               rtol=0.05)  # fmt: skip


def test_empirical_fisher_rejects_bad_log_prob():
    with pytest.raises(ValueError, match="log_prob"):
        empirical_fisher(lambda t, x: t.sum(), torch.tensor([0.5]), torch.zeros(4))
    with pytest.raises(ValueError, match="samples"):
        empirical_fisher(lambda t, x: x, torch.tensor([0.5]), torch.zeros(0))


def test_synthetic_linear_is_seeded_and_linear():
    w = torch.tensor([2.0, -3.4])
    x, y = synthetic_linear(w, 4.2, 500, noise=0.0)
    assert x.shape == (500, 2) and y.shape == (500,)
    torch.testing.assert_close(y, x @ w + 4.2)
    x2, y2 = synthetic_linear(w, 4.2, 500, noise=0.0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    _, y_noisy = synthetic_linear(w, 4.2, 500, noise=0.1)
    assert 0.08 < (y_noisy - y).std().item() < 0.12
    with pytest.raises(ValueError, match="w"):
        synthetic_linear(torch.zeros(2, 2), 0.0, 10)
    with pytest.raises(ValueError, match="n"):
        synthetic_linear(w, 0.0, 0)


# ---------------------------------------------------------------------------------------------
# Exercise checks: wrong answers get a teaching message


def test_stable_ce_check_rejects_naive_and_summed_losses():
    def naive(logits, y):
        p = logits.exp() / logits.exp().sum(1, keepdim=True)
        return -p.gather(1, y[:, None]).log().mean()

    def summed(logits, y):
        return F.cross_entropy(logits, y, reduction="sum")

    with pytest.raises(WrongAnswerError, match="inf or NaN"):
        check("ex-losses-stable-ce", naive)
    with pytest.raises(WrongAnswerError, match="sum over the batch"):
        check("ex-losses-stable-ce", summed)


def test_two_numbers_check_spots_double_softmax_and_log10():
    ce_logits = F.cross_entropy(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([0])).item()
    double = F.cross_entropy(torch.softmax(torch.tensor([[2.0, 1.0, 0.0]]), 1), torch.tensor([0]))
    with pytest.raises(WrongAnswerError, match="softmax twice"):
        check("ex-losses-two-numbers", (-math.log(0.7), double.item()))
    with pytest.raises(WrongAnswerError, match="log10"):
        check("ex-losses-two-numbers", (-math.log10(0.7), ce_logits))


def test_huber_check_rejects_pure_quadratic_and_mean():
    with pytest.raises(WrongAnswerError, match="large errors"):
        check("ex-losses-huber", lambda e, delta: 0.5 * e**2)
    with pytest.raises(WrongAnswerError, match="elementwise"):
        check("ex-losses-huber", lambda e, delta: F.huber_loss(e, 0 * e, delta=delta))


def test_fisher_check_spots_the_bound_and_one_trial():
    with pytest.raises(WrongAnswerError, match="Cram"):
        check("ex-losses-fisher", 1 / 62.5)
    with pytest.raises(WrongAnswerError, match="one trial"):
        check("ex-losses-fisher", 6.25)
    with pytest.raises(WrongAnswerError, match="one number"):
        check("ex-losses-fisher", "62.5")
