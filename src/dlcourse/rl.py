"""Policy-gradient reinforcement learning: returns, the REINFORCE loss, exact gradients, rollouts.

Environments here share one small batched interface, so the same rollout code drives the toy
``Corridor`` and gymnasium's CartPole: ``env.num_envs``, ``env.obs_dim``, ``env.n_actions``,
``env.reset(seed) -> obs (N, obs_dim)`` and ``env.step(actions (N,)) -> (obs, reward, done)``,
all torch tensors. A policy is any callable ``policy(obs (N, obs_dim)) -> Categorical``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.distributions import Categorical

from .train import History

__all__ = [
    "CategoricalPolicy",
    "Corridor",
    "GymEnv",
    "discounted_returns",
    "episode_gradients",
    "evaluate_policy",
    "exact_policy_gradient",
    "make_env",
    "reinforce_estimate",
    "reinforce_loss",
    "run_episode",
    "sample_actions",
    "time_baseline",
    "train_reinforce",
]


# ----------------------------------------------------------------------------------------------
# Returns and the surrogate loss
# ----------------------------------------------------------------------------------------------


def discounted_returns(
    rewards: torch.Tensor | list[float], gamma: float, dones: torch.Tensor | None = None
) -> torch.Tensor:
    """Reward-to-go ``G_t = r_t + gamma * G_{t+1}``, restarted after every ``done``.

    ``rewards: (..., T)`` with time on the last axis; ``dones: (..., T)`` bool, ``dones[t]``
    meaning the episode ended at step ``t`` (so ``G_t = r_t``). Without ``dones`` the whole row
    is one episode. Returns a float tensor of the shape of ``rewards``. A loop over time (a
    backward scan), vectorised over the leading axes.
    """
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if rewards.ndim == 0:
        raise ValueError("rewards must have a time axis: shape (..., T), got a scalar")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if dones is None:
        keep = torch.ones_like(rewards)
    else:
        dones = torch.as_tensor(dones, device=rewards.device)
        if dones.shape != rewards.shape:
            raise ValueError(
                f"dones must have the shape of rewards {tuple(rewards.shape)}, "
                f"got {tuple(dones.shape)}"
            )
        keep = 1.0 - dones.to(rewards.dtype)
    returns = torch.empty_like(rewards)
    running = rewards.new_zeros(rewards.shape[:-1])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * keep[..., t] * running
        returns[..., t] = running
    return returns


def reinforce_loss(
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    normalize: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Surrogate loss ``L = -1/N sum_n sum_t A[n, t] * log_probs[n, t]`` with ``A`` detached.

    ``log_probs, advantages: (N, T)`` for ``N`` trajectories of ``T`` steps (or ``(T,)``, one
    trajectory). ``mask: (N, T)`` bool marks real steps; padded steps contribute nothing.
    ``normalize=True`` first standardises ``A`` over the real steps, ``(A - mean) / std``.
    Its gradient is minus the REINFORCE estimate of the policy gradient; its value means nothing.
    """
    if log_probs.shape != advantages.shape:
        raise ValueError(
            f"advantages must have the shape of log_probs {tuple(log_probs.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    if log_probs.ndim not in (1, 2):
        raise ValueError(f"log_probs must be (N, T) or (T,), got {tuple(log_probs.shape)}")
    if mask is None:
        mask = torch.ones_like(log_probs, dtype=torch.bool)
    elif mask.shape != log_probs.shape:
        raise ValueError(
            f"mask must have the shape of log_probs {tuple(log_probs.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    advantages = advantages.detach()
    mask = mask.to(log_probs.dtype)
    if normalize:
        count = mask.sum().clamp_min(1.0)
        mean = (advantages * mask).sum() / count
        std = (((advantages - mean) ** 2 * mask).sum() / count).sqrt()
        advantages = (advantages - mean) / (std + 1e-8)
    n_trajectories = log_probs.shape[0] if log_probs.ndim == 2 else 1
    return -(advantages * log_probs * mask).sum() / n_trajectories


def time_baseline(returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Leave-one-out mean return per time step: ``b[n, t] = mean_{m != n, alive at t} G[m, t]``.

    ``returns, mask: (N, T)``. Leaving trajectory ``n`` out keeps ``b`` independent of its own
    actions, so the estimate stays unbiased; where no other trajectory is alive, ``b = 0``.
    """
    if returns.ndim != 2 or mask.shape != returns.shape:
        raise ValueError(
            f"returns and mask must both be (N, T), got {tuple(returns.shape)} and "
            f"{tuple(mask.shape)}"
        )
    m = mask.to(returns.dtype)
    total = (returns * m).sum(0, keepdim=True)
    count = m.sum(0, keepdim=True)
    others = (count - m).clamp_min(1.0)
    baseline = (total - returns * m) / others
    return torch.where(count - m > 0, baseline, torch.zeros_like(baseline)) * m


# ----------------------------------------------------------------------------------------------
# Exact gradients by enumeration, and the Monte-Carlo estimate, for a sequence policy
# ----------------------------------------------------------------------------------------------


def _step_logits(logits: torch.Tensor, horizon: int) -> torch.Tensor:
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive int, got {horizon!r}")
    if logits.ndim == 1:
        return logits.expand(horizon, -1)
    if logits.ndim == 2 and logits.shape[0] == horizon:
        return logits
    raise ValueError(
        f"logits must be (V,) or (horizon, V) = ({horizon}, V), got {tuple(logits.shape)}"
    )


def _rewards_of(reward_fn: Callable, seqs: torch.Tensor) -> torch.Tensor:
    rewards = torch.as_tensor(reward_fn(seqs), dtype=torch.float32, device=seqs.device)
    if rewards.shape != seqs.shape[:1]:
        raise ValueError(
            f"reward_fn must map sequences (M, horizon) to rewards (M,), got shape "
            f"{tuple(rewards.shape)} for M = {seqs.shape[0]}"
        )
    return rewards


def exact_policy_gradient(
    logits: torch.Tensor, reward_fn: Callable[[torch.Tensor], torch.Tensor], horizon: int
) -> torch.Tensor:
    """``grad J`` by enumerating all sequences: ``J = sum_y p(y) R(y)``, differentiated by autograd.

    The policy picks token ``y_t ~ softmax(logits[t])`` at each of ``horizon`` steps
    (``logits: (horizon, V)``, or ``(V,)`` shared by all steps), so ``p(y) = prod_t pi_t(y_t)``.
    ``reward_fn(seqs (M, horizon) long) -> (M,)``. Returns a tensor shaped like ``logits``.
    Enumerates ``V ** horizon`` sequences: small problems only.
    """
    step_logits = _step_logits(logits, horizon)
    vocab = step_logits.shape[-1]
    if vocab**horizon > 1_000_000:
        raise ValueError(f"V ** horizon = {vocab}**{horizon} is too many sequences to enumerate")
    theta = logits.detach().clone().requires_grad_(True)
    log_pi = torch.log_softmax(_step_logits(theta, horizon), dim=-1)  # (horizon, V)
    seqs = torch.tensor(
        list(itertools.product(range(vocab), repeat=horizon)), device=logits.device
    )  # (V**horizon, horizon)
    log_p = log_pi.gather(1, seqs.T).sum(0)  # (M,)
    objective = (log_p.exp() * _rewards_of(reward_fn, seqs)).sum()
    (grad,) = torch.autograd.grad(objective, theta)
    return grad


def reinforce_estimate(
    logits: torch.Tensor,
    reward_fn: Callable[[torch.Tensor], torch.Tensor],
    horizon: int,
    n: int,
    baseline: float | None = None,
    generator: torch.Generator | None = None,
    reduce: bool = True,
) -> torch.Tensor:
    """REINFORCE estimate ``g = 1/n sum_i (R(y_i) - b) * grad log p(y_i)`` from ``n`` samples.

    Same policy as ``exact_policy_gradient``. For softmax logits the score is analytic:
    ``d log pi_t(y_t) / d logits[t] = onehot(y_t) - pi_t``. ``reduce=False`` returns the ``n``
    single-sample estimates ``(n, *logits.shape)`` (for variances) instead of their mean.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    step_logits = _step_logits(logits.detach(), horizon)
    probs = torch.softmax(step_logits, dim=-1)  # (horizon, V)
    vocab = probs.shape[-1]
    sample_device = generator.device if generator is not None else probs.device
    seqs = torch.multinomial(probs.to(sample_device), n, replacement=True, generator=generator)
    seqs = seqs.T.to(probs.device)  # (n, horizon)
    weights = _rewards_of(reward_fn, seqs) - (0.0 if baseline is None else baseline)  # (n,)
    scores = nn.functional.one_hot(seqs, vocab).to(probs.dtype) - probs  # (n, horizon, V)
    if logits.ndim == 1:
        scores = scores.sum(1)  # shared logits: the score adds up over the steps
    per_sample = weights.view(-1, *([1] * logits.ndim)) * scores
    return per_sample.mean(0) if reduce else per_sample


# ----------------------------------------------------------------------------------------------
# Policies and environments
# ----------------------------------------------------------------------------------------------


class CategoricalPolicy(nn.Module):
    """An MLP actor ``obs (N, obs_dim) -> Categorical(logits (N, n_actions))``.

    A classifier over actions: two tanh hidden layers, then one logit per action. The last
    layer starts small, so the initial policy is close to uniform.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64):
        super().__init__()
        if obs_dim < 1 or n_actions < 2 or hidden < 1:
            raise ValueError(
                f"need obs_dim >= 1, n_actions >= 2 and hidden >= 1, got {obs_dim}, "
                f"{n_actions}, {hidden}"
            )
        self.net = nn.Sequential(
            nn.Linear(obs_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, n_actions),
        )
        with torch.no_grad():
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.zero_()

    def forward(self, obs: torch.Tensor) -> Categorical:
        if obs.shape[-1] != self.net[0].in_features:
            raise ValueError(f"obs must be (N, {self.net[0].in_features}), got {tuple(obs.shape)}")
        return Categorical(logits=self.net(obs), validate_args=False)


class Corridor:
    """A corridor of ``n`` cells: start in cell 0, reach cell ``n - 1`` for a reward of 1.

    Actions: 0 = left (a wall at cell 0), 1 = right. Every step also costs ``step_cost``.
    An episode ends at the goal or after ``horizon`` steps. ``num_envs`` corridors run side by
    side; observations are one-hot cells ``(num_envs, n)``. A finished corridor stays finished
    (reward 0) until ``reset``. Deterministic: ``seed`` exists only for the common interface.
    """

    def __init__(self, n: int = 6, horizon: int = 20, step_cost: float = 0.0, num_envs: int = 1):
        if n < 2 or horizon < 1 or num_envs < 1:
            raise ValueError(
                f"need n >= 2, horizon >= 1 and num_envs >= 1, got {n}, {horizon}, {num_envs}"
            )
        self.n, self.horizon, self.step_cost, self.num_envs = n, horizon, step_cost, num_envs
        self.obs_dim, self.n_actions = n, 2
        self.reset()

    def _obs(self) -> torch.Tensor:
        return nn.functional.one_hot(self.position, self.n).float()

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.position = torch.zeros(self.num_envs, dtype=torch.long)
        self.t = 0
        self.finished = torch.zeros(self.num_envs, dtype=torch.bool)
        return self._obs()

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        actions = torch.as_tensor(actions).reshape(-1).cpu()
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must be ({self.num_envs},), got {tuple(actions.shape)}")
        if ((actions < 0) | (actions > 1)).any():
            raise ValueError("actions must be 0 (left) or 1 (right)")
        live = ~self.finished
        move = torch.where(actions == 1, 1, -1)
        self.position = torch.where(live, (self.position + move).clamp(0, self.n - 1),
                                    self.position)  # fmt: skip
        self.t += 1
        at_goal = self.position == self.n - 1
        reward = (at_goal.float() - self.step_cost) * live
        done = self.finished | at_goal | (self.t >= self.horizon)
        self.finished = done
        return self._obs(), reward, done.clone()


class GymEnv:
    """gymnasium's vectorised env behind the batched interface (tensors in, tensors out).

    gymnasium 1.x resets an env on the step *after* it finished (next-step autoreset); the
    rollout code ignores everything an env returns after its ``done``.
    """

    def __init__(self, name: str, seed: int = 0, num_envs: int = 1):
        import gymnasium as gym

        self.env = gym.make_vec(name, num_envs=num_envs, vectorization_mode="vector_entry_point")
        self.num_envs = num_envs
        self.obs_dim = int(self.env.single_observation_space.shape[0])
        self.n_actions = int(self.env.single_action_space.n)
        self._seed: int | None = seed

    def reset(self, seed: int | None = None) -> torch.Tensor:
        seed = self._seed if seed is None else seed
        self._seed = None  # later resets continue the seeded random stream
        obs, _ = self.env.reset(seed=seed)
        return torch.as_tensor(obs, dtype=torch.float32)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        actions = torch.as_tensor(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must be ({self.num_envs},), got {tuple(actions.shape)}")
        obs, reward, terminated, truncated, _ = self.env.step(actions.cpu().numpy())
        done = torch.as_tensor(terminated) | torch.as_tensor(truncated)
        return (
            torch.as_tensor(obs, dtype=torch.float32),
            torch.as_tensor(reward, dtype=torch.float32),
            done,
        )

    def close(self) -> None:
        self.env.close()


def make_env(name: str, seed: int = 0, num_envs: int = 1) -> GymEnv:
    """``num_envs`` copies of the gymnasium env ``name`` (e.g. ``"CartPole-v1"``), seeded."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a gymnasium env id (str), got {type(name).__name__}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    return GymEnv(name, seed=seed, num_envs=num_envs)


# ----------------------------------------------------------------------------------------------
# Rollouts, training, evaluation
# ----------------------------------------------------------------------------------------------


def sample_actions(dist: Categorical, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one action per row of ``dist`` (``(N,)`` long), from ``generator`` if given."""
    probs = dist.probs
    if generator is None:
        return dist.sample()
    drawn = torch.multinomial(probs.to(generator.device), 1, generator=generator)
    return drawn.squeeze(-1).to(probs.device)


@torch.no_grad()
def run_episode(
    env: Any,
    policy: Callable[[torch.Tensor], Categorical],
    generator: torch.Generator | None = None,
    max_steps: int = 1000,
    seed: int | None = None,
    greedy: bool = False,
) -> dict[str, torch.Tensor]:
    """One episode in each of ``env.num_envs`` envs, sampled from ``policy``, padded to ``T``.

    Returns ``obs (N, T, obs_dim)``, ``actions (N, T)``, ``rewards (N, T)``,
    ``log_probs (N, T)`` (recorded while acting, no graph), ``mask (N, T)`` (True on real
    steps) and ``lengths (N,)``. Steps after an env's ``done`` are masked out and zeroed.
    ``greedy=True`` takes the most probable action instead of sampling.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    params = next(iter(policy.parameters()), None) if isinstance(policy, nn.Module) else None
    dev = params.device if params is not None else torch.device("cpu")
    obs = env.reset(seed)
    alive = torch.ones(env.num_envs, dtype=torch.bool)
    record: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "act", "rew", "logp", "mask")}
    for _ in range(max_steps):
        dist = policy(obs.to(dev))
        actions = dist.probs.argmax(-1) if greedy else sample_actions(dist, generator)
        next_obs, reward, done = env.step(actions)
        record["obs"].append(obs)
        record["act"].append(actions.cpu())
        log_prob = dist.logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # = dist.log_prob
        record["logp"].append(log_prob.cpu())
        record["rew"].append(reward * alive)
        record["mask"].append(alive.clone())
        alive &= ~done.cpu()
        obs = next_obs
        if not alive.any():
            break
    mask = torch.stack(record["mask"], 1)
    episode = {
        "obs": torch.stack(record["obs"], 1) * mask.unsqueeze(-1),
        "actions": torch.stack(record["act"], 1) * mask,
        "rewards": torch.stack(record["rew"], 1),
        "log_probs": torch.stack(record["logp"], 1) * mask,
        "mask": mask,
    }
    episode["lengths"] = mask.sum(1)
    return episode


def episode_gradients(
    policy: nn.Module, episode: dict[str, torch.Tensor], weights: torch.Tensor
) -> torch.Tensor:
    """One-episode policy-gradient estimates ``sum_t w[n, t] grad log pi(a_t | s_t)``: ``(N, P)``.

    ``weights: (N, T)`` (returns or advantages, zero on padded steps); ``P`` is the number of
    policy parameters, flattened in ``policy.named_parameters()`` order. Per-episode gradients
    come from ``torch.func.vmap(grad(...))``: one vectorised pass instead of ``N`` backwards.
    """
    from torch.func import functional_call, grad, vmap

    actions, mask = episode["actions"], episode["mask"]
    if weights.shape != actions.shape:
        raise ValueError(
            f"weights must be (N, T) = {tuple(actions.shape)}, got {tuple(weights.shape)}"
        )
    dev = next(policy.parameters()).device
    params = {name: p.detach() for name, p in policy.named_parameters()}

    def weighted_log_prob(params, obs, act, w, m):  # one episode: obs (T, D), act/w/m (T,)
        log_probs = functional_call(policy, params, (obs,)).log_prob(act)
        return (w * log_probs * m).sum()

    grads = vmap(grad(weighted_log_prob), in_dims=(None, 0, 0, 0, 0))(
        params,
        episode["obs"].to(dev),
        actions.to(dev),
        weights.to(dev).detach(),
        mask.to(dev, torch.float32),
    )
    return torch.cat([g.reshape(len(actions), -1) for g in grads.values()], dim=1)


def evaluate_policy(
    env: Any,
    policy: Callable[[torch.Tensor], Categorical],
    max_steps: int = 1000,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Undiscounted return of one episode in each of ``env.num_envs`` envs, ``(N,)``."""
    episode = run_episode(env, policy, generator, max_steps=max_steps, greedy=greedy)
    return episode["rewards"].sum(1)


def _advantages(
    episode: dict[str, torch.Tensor],
    gamma: float,
    returns: str,
    baseline: str | nn.Module | None,
    dev: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    rewards, mask = episode["rewards"].to(dev), episode["mask"].to(dev)
    rtg = discounted_returns(rewards, gamma)  # (N, T)
    if returns == "total":
        weights = rtg[:, :1].expand_as(rtg) * mask  # the whole (discounted) return R(tau)
    elif returns == "reward_to_go":
        weights = rtg
    else:
        raise ValueError(f"returns must be 'total' or 'reward_to_go', got {returns!r}")
    if baseline is None:
        values = torch.zeros_like(weights)
    elif baseline == "time":
        values = time_baseline(weights, mask)
    elif isinstance(baseline, nn.Module):
        with torch.no_grad():
            values = baseline(episode["obs"].to(dev)).squeeze(-1) * mask
    else:
        raise ValueError(f"baseline must be None, 'time' or an nn.Module, got {baseline!r}")
    return (weights - values) * mask, rtg


def train_reinforce(
    env: Any,
    policy: nn.Module,
    iterations: int,
    *,
    lr: float = 1e-2,
    gamma: float = 0.99,
    returns: str = "reward_to_go",
    baseline: str | nn.Module | None = "time",
    normalize: bool = True,
    entropy_coef: float = 0.0,
    value_lr: float = 1e-2,
    optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
    max_steps: int = 1000,
    generator: torch.Generator | None = None,
) -> History:
    """REINFORCE: collect ``env.num_envs`` fresh episodes, take one optimizer step, repeat.

    Each iteration: roll out the current policy (on-policy data), weight every step by the
    reward-to-go ``G_t`` (or the whole return, ``returns="total"``), subtract a baseline
    (``"time"``: leave-one-out mean of ``G_t`` over the batch; an ``nn.Module``: a learned value
    ``V(s)``, fitted to ``G_t`` by its own Adam with ``value_lr``), optionally standardise, and
    take one ``optimizer`` step (Adam by default) on
    ``reinforce_loss - entropy_coef * entropy``. The history logs per iteration the mean
    undiscounted ``return``, ``length`` and the surrogate ``loss``.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    dev = next(policy.parameters()).device
    opt = optimizer(policy.parameters(), lr=lr)
    value_opt = None
    if isinstance(baseline, nn.Module):
        value_opt = torch.optim.Adam(baseline.parameters(), lr=value_lr)
    history = History()
    for it in range(iterations):
        episode = run_episode(env, policy, generator, max_steps=max_steps)
        mask = episode["mask"].to(dev)
        advantages, rtg = _advantages(episode, gamma, returns, baseline, dev)
        dist = policy(episode["obs"].to(dev))  # one batched pass with a graph
        log_probs = dist.log_prob(episode["actions"].to(dev))
        loss = reinforce_loss(log_probs, advantages, normalize=normalize, mask=mask)
        if entropy_coef:
            entropy = (dist.entropy() * mask).sum() / mask.sum()
            loss = loss - entropy_coef * entropy
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if value_opt is not None:
            pred = baseline(episode["obs"].to(dev)).squeeze(-1)
            value_loss = (((pred - rtg) ** 2) * mask).sum() / mask.sum()
            value_opt.zero_grad(set_to_none=True)
            value_loss.backward()
            value_opt.step()
        history.log(
            **{"iteration": it, "return": episode["rewards"].sum(1).mean()},
            length=episode["lengths"].float().mean(),
            loss=loss.detach(),
        )
    return history
