"""Tests for dlcourse.diffusion: schedules, forward process, posterior, samplers, exercises."""

import math

import pytest
import torch

from dlcourse.diffusion import (
    EpsMLP,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_loss,
    ddpm_sample,
    ddpm_schedule,
    predict_eps_from_x0,
    predict_x0_from_eps,
    predict_x0_from_v,
    q_posterior,
    q_sample,
    q_step,
    timestep_embedding,
    v_target,
)
from dlcourse.exercises import WrongAnswerError, check


@pytest.fixture(scope="module")
def linear():
    return ddpm_schedule(1000)


def test_linear_schedule_numbers(linear):
    abar = linear["alpha_bar"]
    assert abar.shape == (1001,) and abar[0] == 1 and linear["betas"][0] == 0
    for t, value in ((1000, 4.04e-5), (250, 0.524), (500, 0.0786), (750, 0.00335)):
        assert math.isclose(abar[t].item(), value, rel_tol=1e-2), t
    assert math.isclose(abar[1000].sqrt().item(), 0.0064, rel_tol=1e-2)
    torch.testing.assert_close(linear["betas"][1:], torch.linspace(1e-4, 0.02, 1000))


def test_cosine_schedule_numbers():
    abar = ddpm_schedule(1000, kind="cosine")["alpha_bar"]
    assert math.isclose(abar[1000].item(), 2.4e-9, rel_tol=2e-2)
    assert math.isclose(abar[500].item(), 0.494, rel_tol=1e-2)
    assert (abar[1:] < abar[:-1]).all()


def test_schedule_derived_quantities():
    linear = ddpm_schedule(1000, dtype=torch.float64)
    torch.testing.assert_close(linear["alphas"], 1 - linear["betas"])
    torch.testing.assert_close(linear["alpha_bar"], torch.cumprod(linear["alphas"], 0))
    torch.testing.assert_close(linear["alpha_bar_prev"][1:], linear["alpha_bar"][:-1])
    abar = linear["alpha_bar"][1:]
    torch.testing.assert_close(linear["snr"][1:], abar / (1 - abar))
    assert linear["posterior_var"][1] == 0  # x_0 is known exactly given x_1 and x_0
    assert not any(v.requires_grad for v in linear.values())


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="T"):
        ddpm_schedule(0)
    with pytest.raises(ValueError, match="kind"):
        ddpm_schedule(10, kind="quadratic")
    with pytest.raises(ValueError, match="beta_start"):
        ddpm_schedule(10, beta_start=0.1, beta_end=0.01)


def test_closed_form_matches_composed_steps(linear):
    gen = torch.Generator().manual_seed(0)
    n, t_final = 50_000, 40
    x0 = torch.tensor([[1.0, -2.0]]).expand(n, 2)
    x = x0
    for t in range(1, t_final + 1):
        x = q_step(x, torch.full((n,), t), torch.randn(n, 2, generator=gen), linear)
    abar = linear["alpha_bar"][t_final]
    torch.testing.assert_close(x.mean(0), abar.sqrt() * x0[0], atol=2e-2, rtol=0)
    torch.testing.assert_close(x.var(0), (1 - abar).expand(2), atol=2e-2, rtol=0)


def test_q_sample_at_zero_is_identity_and_shapes(linear):
    x0 = torch.randn(3, 1, 4, 4)
    noise = torch.randn_like(x0)
    torch.testing.assert_close(q_sample(x0, torch.zeros(3, dtype=torch.long), noise, linear), x0)
    out = q_sample(x0, torch.tensor([1, 500, 1000]), noise, linear)
    assert out.shape == x0.shape
    with pytest.raises(ValueError, match="noise"):
        q_sample(x0, torch.tensor([1, 2, 3]), noise[:2], linear)
    with pytest.raises(ValueError, match="t must"):
        q_sample(x0, torch.tensor([1, 2, 1001]), noise, linear)
    with pytest.raises(TypeError, match="t must"):
        q_sample(x0, torch.tensor([1.0, 2.0, 3.0]), noise, linear)


def test_posterior_is_gaussian_conditioning():
    linear = ddpm_schedule(1000, dtype=torch.float64)
    t = torch.arange(1, 1001)
    x0, x_t = torch.randn(1000, 2, dtype=torch.float64), torch.randn(1000, 2, dtype=torch.float64)
    mean, var = q_posterior(x0, x_t, t, linear)
    a = linear["alphas"][t].double().unsqueeze(1)
    abar, abar_prev = linear["alpha_bar"][t].double(), linear["alpha_bar_prev"][t].double()
    abar, abar_prev = abar.unsqueeze(1), abar_prev.unsqueeze(1)
    # joint of (x_{t-1}, x_t) given x0: means, variances and covariance
    mu_prev, mu_t = abar_prev.sqrt() * x0.double(), abar.sqrt() * x0.double()
    cov = a.sqrt() * (1 - abar_prev)
    cond_mean = mu_prev + cov / (1 - abar) * (x_t.double() - mu_t)
    cond_var = (1 - abar_prev) - cov**2 / (1 - abar)
    torch.testing.assert_close(mean, cond_mean)
    torch.testing.assert_close(var, cond_var)


def test_parameterisations_round_trip(linear):
    t = torch.randint(1, 1001, (64,), generator=torch.Generator().manual_seed(1))
    x0, eps = torch.randn(64, 2), torch.randn(64, 2)
    x_t = q_sample(x0, t, eps, linear)
    torch.testing.assert_close(predict_x0_from_eps(x_t, t, eps, linear), x0, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(predict_eps_from_x0(x_t, t, x0, linear), eps, atol=1e-3, rtol=1e-3)
    v = v_target(x0, eps, t, linear)
    torch.testing.assert_close(predict_x0_from_v(x_t, t, v, linear), x0, atol=1e-4, rtol=1e-4)


def test_timestep_embedding_matches_formula():
    t = torch.tensor([0, 1, 7, 999])
    emb = timestep_embedding(t, 8)
    freqs = 10000.0 ** (-torch.arange(4) / 4)
    expected = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], 1)
    torch.testing.assert_close(emb, expected)
    assert timestep_embedding(t, 7).shape == (4, 7)
    with pytest.raises(ValueError, match="dim"):
        timestep_embedding(t, 1)
    with pytest.raises(ValueError, match="t must"):
        timestep_embedding(t[None], 8)


def test_eps_mlp_shapes_and_errors():
    net = EpsMLP(dim=2, hidden=16, t_dim=8, cond_dim=3)
    x, t, c = torch.randn(5, 2), torch.randint(0, 100, (5,)), torch.randn(5, 3)
    assert net(x, t, c).shape == (5, 2)
    with pytest.raises(ValueError, match="cond"):
        net(x, t)
    with pytest.raises(ValueError, match="x must"):
        net(torch.randn(5, 3), t, c)


def test_ddpm_loss_is_seeded_and_matches_manual(linear):
    net = EpsMLP(hidden=16, t_dim=8)
    x0 = torch.randn(32, 2)
    loss = ddpm_loss(net, x0, linear, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    t = torch.randint(1, 1001, (32,), generator=gen)
    noise = torch.randn(32, 2, generator=gen)
    abar = linear["alpha_bar"][t].unsqueeze(1)
    manual = ((net(abar.sqrt() * x0 + (1 - abar).sqrt() * noise, t) - noise) ** 2).mean()
    torch.testing.assert_close(loss, manual)
    loss.backward()  # differentiable in the denoiser's parameters
    assert net.out.weight.grad is not None


def _oracle(x0_point: torch.Tensor, schedule):
    """The exact eps-predictor when the data are a single point ``x0_point``."""

    def eps_model(x_t, t):
        abar = schedule["alpha_bar"][t].unsqueeze(1)
        return (x_t - abar.sqrt() * x0_point) / (1 - abar).sqrt()

    return eps_model


def test_samplers_with_an_exact_denoiser_return_the_data_point(linear):
    point = torch.tensor([0.7, -1.2])
    oracle = _oracle(point, linear)
    gen = torch.Generator().manual_seed(4)
    out = ddim_sample(oracle, (16, 2), linear, steps=10, generator=gen)
    torch.testing.assert_close(out, point.expand(16, 2), atol=1e-3, rtol=0)
    small = ddpm_schedule(50, beta_start=2e-3, beta_end=0.4)
    out, traj = ddpm_sample(_oracle(point, small), (16, 2), small, generator=gen,
                            return_trajectory=True)  # fmt: skip
    assert traj.shape == (51, 16, 2)
    torch.testing.assert_close(traj[-1], out)
    torch.testing.assert_close(out, point.expand(16, 2), atol=1e-3, rtol=0)


def test_ddim_step_is_deterministic_and_exact():
    x0, eps = torch.randn(8, 2), torch.randn(8, 2)
    x_t = 0.1**0.5 * x0 + 0.9**0.5 * eps
    a, b = ddim_step(x_t, eps, 0.1, 1.0), ddim_step(x_t, eps, 0.1, 1.0)
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(a[0], x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[1], x0, atol=1e-5, rtol=1e-5)
    # eta = 1 gives the DDPM posterior variance beta~ = (1 - abar_s)/(1 - abar_t) (1 - abar_t/abar_s)
    z = torch.randn(8, 2)
    x_prev, _ = ddim_step(x_t, eps, 0.1, 0.5, eta=1.0, noise=z)
    x_det, _ = ddim_step(x_t, eps, 0.1, 0.5, eta=0.0)
    sigma = math.sqrt((1 - 0.5) / (1 - 0.1) * (1 - 0.1 / 0.5))
    shift = x_prev - x_det - sigma * z
    coef = math.sqrt(1 - 0.5 - sigma**2) - math.sqrt(1 - 0.5)
    torch.testing.assert_close(shift, coef * eps)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(x_t, eps, 0.1, 0.5, eta=1.0)
    with pytest.raises(ValueError, match="abar_prev"):
        ddim_step(x_t, eps, 0.5, 0.1)


def test_ddim_sample_is_deterministic_at_eta_zero(linear):
    net = EpsMLP(hidden=16, t_dim=8)
    x_T = torch.randn(10, 2)
    a = ddim_sample(net, (10, 2), linear, steps=5, x_T=x_T)
    b = ddim_sample(net, (10, 2), linear, steps=5, x_T=x_T.clone())
    assert torch.equal(a, b)
    assert ddim_timesteps(1000, 4) == [1000, 750, 500, 250, 0]
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(10, 11)
    with pytest.raises(ValueError, match="x_T"):
        ddim_sample(net, (10, 2), linear, steps=5, x_T=torch.randn(3, 2))


# --- exercise checks reject typical mistakes ---------------------------------------------------


def test_schedule_check_rejects_missing_zero_and_sqrt():
    def no_zero(T, kind="linear"):
        return ddpm_schedule(T, kind=kind)["alpha_bar"][1:]

    def signal_coefficient(T, kind="linear"):
        return ddpm_schedule(T, kind=kind)["alpha_bar"].sqrt()

    with pytest.raises(WrongAnswerError, match="T \\+ 1"):
        check("ex-diffusion-schedule", no_zero)
    with pytest.raises(WrongAnswerError, match="alpha_bar"):
        check("ex-diffusion-schedule", signal_coefficient)


def test_q_sample_check_rejects_variance_for_std():
    def wrong(x0, t, noise, schedule):
        abar = schedule["alpha_bar"][t].view(-1, *[1] * (x0.ndim - 1))
        return abar * x0 + (1 - abar) * noise

    with pytest.raises(WrongAnswerError, match="x_t"):
        check("ex-diffusion-q-sample", wrong)


def test_ddim_step_check_rejects_random_and_wrong_updates():
    def noisy(x_t, eps, abar_t, abar_prev, eta=0.0, noise=None):
        x0_hat = (x_t - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5
        return x0_hat + 1e-3 * torch.randn_like(x0_hat), x0_hat

    def forgets_eps(x_t, eps, abar_t, abar_prev, eta=0.0, noise=None):
        x0_hat = (x_t - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5
        return abar_prev**0.5 * x0_hat, x0_hat

    with pytest.raises(WrongAnswerError, match="identical"):
        check("ex-diffusion-ddim-step", noisy)
    with pytest.raises(WrongAnswerError, match="x_prev"):
        check("ex-diffusion-ddim-step", forgets_eps)


def test_v_check_rejects_swapped_signs():
    def wrong(x_t, v, alpha_bar):
        a = torch.as_tensor(alpha_bar)
        return a.sqrt() * x_t + (1 - a).sqrt() * v, (1 - a).sqrt() * x_t - a.sqrt() * v

    with pytest.raises(WrongAnswerError, match="x0"):
        check("ex-diffusion-v-param", wrong)
