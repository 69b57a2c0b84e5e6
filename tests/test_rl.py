"""Tests for dlcourse.rl: returns, the REINFORCE loss and estimate, environments, rollouts."""

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from dlcourse.exercises import WrongAnswerError, check
from dlcourse.rl import (
    CategoricalPolicy,
    Corridor,
    discounted_returns,
    episode_gradients,
    evaluate_policy,
    exact_policy_gradient,
    make_env,
    reinforce_estimate,
    reinforce_loss,
    run_episode,
    time_baseline,
    train_reinforce,
)


def _loop_returns(rewards, gamma, dones):
    out = torch.zeros_like(rewards)
    for row in range(rewards.shape[0]):
        running = 0.0
        for t in reversed(range(rewards.shape[1])):
            if dones[row, t]:
                running = 0.0
            running = rewards[row, t].item() + gamma * running
            out[row, t] = running
    return out


def _always(action):
    return lambda obs: Categorical(logits=torch.where(torch.arange(2) == action, 5.0, -5.0)
                                   .expand(len(obs), 2))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# discounted_returns, reinforce_loss, time_baseline


def test_discounted_returns_hand_computed():
    got = discounted_returns([1.0, 0.0, 0.0, 1.0], 0.9)
    torch.testing.assert_close(got, torch.tensor([1.729, 0.81, 0.9, 1.0]))


def test_discounted_returns_matches_python_loop_with_dones():
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randn(3, 12, generator=gen)
    dones = torch.rand(3, 12, generator=gen) < 0.2
    torch.testing.assert_close(
        discounted_returns(rewards, 0.95, dones), _loop_returns(rewards, 0.95, dones)
    )


def test_discounted_returns_gamma_one_is_reversed_cumsum():
    rewards = torch.arange(6.0)
    expected = rewards.flip(0).cumsum(0).flip(0)
    torch.testing.assert_close(discounted_returns(rewards, 1.0), expected)


def test_discounted_returns_rejects_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="dones"):
        discounted_returns(torch.ones(2, 3), 0.9, torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="rewards"):
        discounted_returns(torch.tensor(1.0), 0.9)


def test_reinforce_loss_gradient_is_the_score_function_gradient():
    theta = torch.tensor([0.2, -0.5, 1.0], requires_grad=True)
    actions = torch.tensor([[0, 2, 2], [1, 0, 2]])
    advantages = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    log_probs = torch.log_softmax(theta, 0)[actions]
    reinforce_loss(log_probs, advantages).backward()
    probs = torch.softmax(theta.detach(), 0)
    score = nn.functional.one_hot(actions, 3).float() - probs  # (N, T, K)
    expected = -(advantages.unsqueeze(-1) * score).sum((0, 1)) / 2
    torch.testing.assert_close(theta.grad, expected)


def test_reinforce_loss_detaches_advantages_and_masks_padding():
    log_probs = torch.tensor([[-0.5, -1.0], [-0.2, -3.0]], requires_grad=True)
    advantages = torch.tensor([[1.0, 2.0], [3.0, 100.0]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    loss = reinforce_loss(log_probs, advantages, mask=mask)
    loss.backward()
    assert advantages.grad is None
    torch.testing.assert_close(loss, -torch.tensor(-0.5 - 2.0 - 0.6) / 2)
    assert log_probs.grad[1, 1] == 0


def test_reinforce_loss_normalize_standardises_real_steps():
    log_probs = torch.zeros(2, 3, requires_grad=True)
    advantages = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    reinforce_loss(log_probs, advantages, normalize=True, mask=mask).backward()
    weights = -log_probs.grad * 2  # the standardised advantages on real steps
    real = weights[mask]
    assert abs(real.mean().item()) < 1e-6
    assert abs(real.std(unbiased=False).item() - 1.0) < 1e-4


def test_reinforce_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="advantages"):
        reinforce_loss(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="mask"):
        reinforce_loss(torch.zeros(2, 3), torch.zeros(2, 3), mask=torch.ones(3, dtype=torch.bool))


def test_time_baseline_is_leave_one_out_mean():
    returns = torch.tensor([[3.0, 2.0, 1.0], [6.0, 4.0, 0.0], [9.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    expected = torch.tensor([[7.5, 4.0, 0.0], [6.0, 2.0, 0.0], [4.5, 0.0, 0.0]])
    torch.testing.assert_close(time_baseline(returns, mask), expected)
    with pytest.raises(ValueError, match="mask"):
        time_baseline(returns, mask[0])


# ---------------------------------------------------------------------------------------------
# exact gradient and REINFORCE estimate


def test_exact_gradient_of_a_bandit_is_p_times_r_minus_j():
    logits, rewards = torch.tensor([0.3, -0.4, 1.0]), torch.tensor([1.0, 4.0, -2.0])
    probs = torch.softmax(logits, 0)
    expected = probs * (rewards - (probs * rewards).sum())
    got = exact_policy_gradient(logits, lambda s: rewards[s[:, 0]], horizon=1)
    torch.testing.assert_close(got, expected)


def test_exact_gradient_of_additive_reward_splits_by_step():
    logits = torch.tensor([[0.1, 0.5, -0.3], [1.0, 0.0, 0.2]])
    table = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 3.0]])  # r_t(y_t)
    got = exact_policy_gradient(logits, lambda s: table[0, s[:, 0]] + table[1, s[:, 1]], 2)
    probs = torch.softmax(logits, -1)
    expected = probs * (table - (probs * table).sum(-1, keepdim=True))
    torch.testing.assert_close(got, expected)
    shared = exact_policy_gradient(logits[0], lambda s: table[0, s[:, 0]] + table[1, s[:, 1]], 2)
    p0 = probs[0]
    torch.testing.assert_close(shared, (p0 * (table - (p0 * table).sum(-1, keepdim=True))).sum(0))


def test_exact_gradient_rejects_bad_logits():
    with pytest.raises(ValueError, match="logits"):
        exact_policy_gradient(torch.zeros(3, 2), lambda s: s.sum(1).float(), horizon=2)
    with pytest.raises(ValueError, match="reward_fn"):
        exact_policy_gradient(torch.zeros(2), lambda s: s.float(), horizon=2)


def test_reinforce_estimate_is_unbiased():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, generator=gen)
    table = torch.rand(3, 3, generator=gen)

    def reward_fn(s):
        return table[s[:, 0], s[:, 1]]

    exact = exact_policy_gradient(logits, reward_fn, 2)
    estimate = reinforce_estimate(logits, reward_fn, 2, n=100_000, generator=gen)
    torch.testing.assert_close(estimate, exact, atol=0.01, rtol=0)
    with_baseline = reinforce_estimate(logits, reward_fn, 2, 100_000, baseline=0.5, generator=gen)
    torch.testing.assert_close(with_baseline, exact, atol=0.01, rtol=0)


def test_reinforce_estimate_matches_autograd_of_the_surrogate():
    logits = torch.tensor([[0.5, -0.2, 0.1], [0.0, 0.3, -1.0]])
    seen = {}

    def reward_fn(s):
        seen["seqs"] = s
        return (s[:, 0] == s[:, 1]).float() + 0.5 * s[:, 1]

    gen = torch.Generator().manual_seed(3)
    per_sample = reinforce_estimate(logits, reward_fn, 2, n=7, baseline=0.2, generator=gen,
                                    reduce=False)  # fmt: skip
    assert per_sample.shape == (7, 2, 3)
    theta = logits.clone().requires_grad_(True)
    seqs = seen["seqs"]
    log_p = torch.log_softmax(theta, -1).gather(1, seqs.T).T  # (n, horizon)
    advantages = (reward_fn(seqs) - 0.2).unsqueeze(1).expand_as(log_p)
    reinforce_loss(log_p, advantages).backward()
    torch.testing.assert_close(-theta.grad, per_sample.mean(0))


def test_baseline_reduces_variance_on_a_bandit():
    logits, rewards = torch.tensor([0.0, 0.5]), torch.tensor([10.0, 11.0])
    gen = torch.Generator().manual_seed(0)
    j = (torch.softmax(logits, 0) * rewards).sum().item()
    plain = reinforce_estimate(logits, lambda s: rewards[s[:, 0]], 1, 5000, generator=gen,
                               reduce=False)  # fmt: skip
    based = reinforce_estimate(logits, lambda s: rewards[s[:, 0]], 1, 5000, baseline=j,
                               generator=gen, reduce=False)  # fmt: skip
    assert based.var(0).sum() < 0.05 * plain.var(0).sum()


def test_reinforce_estimate_rejects_bad_n():
    with pytest.raises(ValueError, match="n must"):
        reinforce_estimate(torch.zeros(2), lambda s: s[:, 0].float(), 1, n=0)


# ---------------------------------------------------------------------------------------------
# policy, environments, rollouts, training


def test_categorical_policy_starts_near_uniform():
    policy = CategoricalPolicy(4, 3, hidden=16)
    dist = policy(torch.randn(5, 4))
    assert dist.probs.shape == (5, 3)
    torch.testing.assert_close(dist.probs, torch.full((5, 3), 1 / 3), atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="obs"):
        policy(torch.randn(5, 3))


def test_corridor_walks_to_the_goal():
    env = Corridor(n=4, horizon=10, step_cost=0.1)
    env.reset()
    obs, reward, done = env.step(torch.tensor([0]))  # the wall keeps us in cell 0
    assert obs.argmax().item() == 0 and not done.item()
    for _ in range(2):
        _, reward, done = env.step(torch.tensor([1]))
        assert not done.item()
    obs, reward, done = env.step(torch.tensor([1]))
    assert obs.argmax().item() == 3 and done.item()
    assert reward.item() == pytest.approx(0.9)
    _, reward, done = env.step(torch.tensor([0]))  # finished stays finished
    assert reward.item() == 0 and done.item()
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([1, 1]))


def test_corridor_truncates_at_the_horizon():
    env = Corridor(n=6, horizon=3, step_cost=0.5, num_envs=2)
    env.reset()
    dones = [env.step(torch.tensor([0, 1]))[2] for _ in range(3)]
    assert not dones[1].any() and dones[2].all()


def test_run_episode_masks_steps_after_done():
    env = Corridor(n=6, horizon=20, step_cost=0.1, num_envs=3)
    right = run_episode(env, _always(1))
    assert right["lengths"].tolist() == [5, 5, 5]
    torch.testing.assert_close(right["rewards"].sum(1), torch.full((3,), 0.5))
    gen = torch.Generator().manual_seed(0)
    policy = CategoricalPolicy(6, 2, hidden=8)
    episode = run_episode(Corridor(num_envs=8, step_cost=0.1), policy, gen)
    mask = episode["mask"]
    assert (episode["rewards"][~mask] == 0).all()
    assert (mask.sum(1) == episode["lengths"]).all()
    recomputed = policy(episode["obs"]).log_prob(episode["actions"]) * mask
    torch.testing.assert_close(recomputed, episode["log_probs"])


def test_cartpole_rollout_ignores_autoreset_steps():
    env = make_env("CartPole-v1", seed=0, num_envs=6)
    gen = torch.Generator().manual_seed(0)
    episode = run_episode(env, lambda obs: Categorical(logits=torch.zeros(len(obs), 2)), gen,
                          max_steps=500)  # fmt: skip
    assert episode["obs"].shape[-1] == 4
    torch.testing.assert_close(episode["rewards"].sum(1), episode["lengths"].float())
    assert episode["lengths"].min() < episode["lengths"].max()  # someone waited, masked
    assert 8 <= episode["lengths"].float().mean() <= 60
    with pytest.raises(TypeError, match="name"):
        make_env(3)


def test_evaluate_policy_greedy_corridor():
    returns = evaluate_policy(Corridor(step_cost=0.1, num_envs=2), _always(1), greedy=True)
    torch.testing.assert_close(returns, torch.full((2,), 0.5))


def test_episode_gradients_match_one_backward_per_episode():
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    policy = CategoricalPolicy(6, 2, hidden=8)
    episode = run_episode(Corridor(num_envs=4, step_cost=0.1), policy, gen)
    weights = discounted_returns(episode["rewards"], 1.0)
    grads = episode_gradients(policy, episode, weights)
    for n in range(4):
        policy.zero_grad()
        log_probs = policy(episode["obs"][n]).log_prob(episode["actions"][n])
        (weights[n] * log_probs * episode["mask"][n]).sum().backward()
        flat = torch.cat([p.grad.reshape(-1) for p in policy.parameters()])
        torch.testing.assert_close(grads[n], flat, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="weights"):
        episode_gradients(policy, episode, weights[:, :1])


def test_train_reinforce_learns_the_corridor():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    policy = CategoricalPolicy(6, 2, hidden=16)
    history = train_reinforce(Corridor(step_cost=0.1, num_envs=16), policy, 25, lr=0.03,
                              gamma=1.0, baseline=nn.Linear(6, 1), generator=gen)  # fmt: skip
    assert set(history) >= {"iteration", "return", "length", "loss"}
    assert sum(history["return"][-5:]) / 5 > 0.4  # optimum 0.5, uniform policy about -1.3
    with pytest.raises(ValueError, match="baseline"):
        train_reinforce(Corridor(), policy, 1, baseline="mean")


# ---------------------------------------------------------------------------------------------
# exercise checks reject typical wrong answers


def test_reward_to_go_check_spots_reversed_and_wrongly_discounted():
    def reversed_returns(rewards, gamma):
        return discounted_returns(torch.tensor(rewards), gamma).flip(0)

    def from_start(rewards, gamma):
        g = discounted_returns(torch.tensor(rewards), gamma)
        return g * gamma ** torch.arange(len(rewards))

    with pytest.raises(WrongAnswerError, match="reverse"):
        check("ex-pg-reward-to-go", reversed_returns)
    with pytest.raises(WrongAnswerError, match="gamma"):
        check("ex-pg-reward-to-go", from_start)


def test_bandit_check_spots_missing_coupling():
    def p_times_r(logits, rewards):
        return torch.softmax(logits, 0) * rewards

    with pytest.raises(WrongAnswerError, match="p_k"):
        check("ex-pg-bandit-gradient", p_times_r)
    with pytest.raises(WrongAnswerError, match="sign is flipped"):
        check("ex-pg-bandit-gradient", lambda logits, rewards: -p_times_r(logits, rewards) + (
            torch.softmax(logits, 0) * (torch.softmax(logits, 0) * rewards).sum()))  # fmt: skip


def test_baseline_check_spots_trivial_and_unweighted_answers():
    with pytest.raises(WrongAnswerError):
        check("ex-pg-baseline-zero", lambda logits, b: torch.zeros(len(logits), len(logits)))

    def unweighted(logits, b):
        probs = torch.softmax(logits.double(), 0)
        return b * (torch.eye(len(logits), dtype=torch.float64) - probs)

    with pytest.raises(WrongAnswerError, match="pi\\(a\\)"):
        check("ex-pg-baseline-zero", unweighted)


def test_which_grad_check():
    with pytest.raises(WrongAnswerError, match="integer"):
        check("ex-pg-which-grad", (True, True, True))
    with pytest.raises(WrongAnswerError):
        check("ex-pg-which-grad", (False, True, True))
    with pytest.raises(WrongAnswerError, match="bool"):
        check("ex-pg-which-grad", (0, 0, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_kernels_run_on_gpu():
    logits = torch.tensor([[0.1, 0.2, 0.3]], device="cuda").expand(2, 3).contiguous()
    table = torch.rand(3, 3, device="cuda")
    exact = exact_policy_gradient(logits, lambda s: table[s[:, 0], s[:, 1]], 2)
    gen = torch.Generator(device="cuda").manual_seed(0)
    est = reinforce_estimate(logits, lambda s: table[s[:, 0], s[:, 1]], 2, 50_000, generator=gen)
    assert exact.device.type == est.device.type == "cuda"
    torch.testing.assert_close(est, exact, atol=0.02, rtol=0)
    policy = CategoricalPolicy(6, 2).cuda()
    episode = run_episode(Corridor(num_envs=3), policy, torch.Generator().manual_seed(0))
    assert episode["actions"].shape[0] == 3


def test_discounted_returns_of_an_empty_episode_is_empty():
    assert discounted_returns([], 0.9).shape == (0,)
    assert discounted_returns(torch.zeros(3, 0), 0.9).shape == (3, 0)
