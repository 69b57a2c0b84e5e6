"""Seeding, device choice, timing and a small training loop used by every chapter.

Every chapter starts with ``seed_everything(0)``: it seeds Python, NumPy and torch, pins torch to
one thread (two threads on a busy 2-core machine can be 10-60x slower for small models) and
returns a seeded ``torch.Generator`` for code that takes randomness explicitly.
"""

from __future__ import annotations

import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = [
    "History",
    "accuracy",
    "benchmark",
    "device",
    "env_report",
    "evaluate",
    "fit",
    "seed_everything",
]


def seed_everything(
    seed: int = 0, threads: int = 1, deterministic: bool = False
) -> torch.Generator:
    """Seed ``random``, NumPy and torch, set torch's thread count, return a seeded generator.

    ``deterministic=True`` also asks torch for deterministic kernels (slower on GPU).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    generator = torch.Generator().manual_seed(seed)
    return generator


def device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    Set the environment variable ``DLCOURSE_DEVICE`` (e.g. ``cpu``) to override the choice.
    """
    forced = os.environ.get("DLCOURSE_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def env_report() -> dict[str, str]:
    """Versions, thread count and device, for the first cell of a chapter."""
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": str(torch.get_num_threads()),
        "device": str(device()),
        "platform": f"{platform.system()} {platform.machine()}",
    }
    for name in ("sklearn", "matplotlib"):
        module = sys.modules.get(name)
        if module is not None:
            report[name] = module.__version__
    return report


def benchmark(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs, after ``warmup`` runs.

    On CUDA the device is synchronised before each clock read, so queued kernels are counted.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max matches the label. ``logits: (N, C)``, ``labels: (N,)``."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (N, C) and labels (N,); got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    return (logits.argmax(dim=1) == labels).float().mean().item()


class History(dict):
    """Metric name -> list of values, one per logged step; ``last(name)`` reads the newest."""

    def log(self, **metrics: float) -> None:
        for name, value in metrics.items():
            self.setdefault(name, []).append(float(value))

    def last(self, name: str) -> float:
        return self[name][-1]


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of a classifier on ``(x, y)``, in batches, in eval mode."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(dev)
        yb = y[start : start + batch_size].to(dev)
        logits = model(xb)
        total_loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(dim=1) == yb).sum().item()
    model.train(was_training)
    return {"loss": total_loss / len(x), "accuracy": correct / len(x)}


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterable[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 1,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
    generator: torch.Generator | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    log_every: int = 50,
    progress: bool = True,
) -> History:
    """Minibatch training: shuffle, forward, loss, backward, step; return a ``History``.

    Uses Adam(lr) unless an ``optimizer`` is given. Every ``log_every`` steps the history gets
    ``step`` and the mean training ``loss`` since the last log; after each epoch, when ``val`` is
    given, ``val_loss`` and ``val_accuracy`` (for classifiers). Data move to the model's device
    batch by batch, so ``x`` and ``y`` may stay on the CPU.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    dev = next(model.parameters()).device
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    steps_per_epoch = -(-len(x) // batch_size)
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, leave=False, mininterval=1)
    step, running, count = 0, 0.0, 0
    model.train()
    for _ in range(epochs):
        for idx in _batches(len(x), batch_size, generator):
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running, count = running + loss.item(), count + 1
            if step % log_every == 0:
                history.log(step=step, loss=running / count)
                bar.set_postfix(loss=f"{running / count:.3f}")
                running, count = 0.0, 0
            bar.update()
        if val is not None:
            metrics = evaluate(model, *val)
            history.log(val_loss=metrics["loss"], val_accuracy=metrics["accuracy"])
            model.train()
    bar.close()
    return history


# ---------------------------------------------------------------------------------------------
# Chapter 2.5 (generalization): bias-variance by simulation, Hoeffding and the union bound

__all__ += ["bias_variance_decomposition", "hoeffding_bound", "samples_needed"]


def bias_variance_decomposition(
    fit_predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    f_true: Callable[[torch.Tensor], torch.Tensor],
    sample_train: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    x_test: torch.Tensor,
    noise_std: float,
    n_repeats: int = 300,
    seed: int = 0,
) -> dict[str, float]:
    """Estimate the squared-loss decomposition at ``x_test`` by resampling training sets.

    For ``y = f(x) + eps``, ``Var(eps) = noise_std**2``, and a predictor ``f_D`` fitted on a
    random training set ``D``:
    ``E[(y - f_D(x))^2] = (E_D f_D(x) - f(x))^2 + Var_D f_D(x) + noise_std^2``,
    each term averaged over the points of ``x_test``.

    ``sample_train(seed) -> (x, y)`` draws one training set; ``fit_predict(x, y, x_test)`` fits
    on it and returns predictions ``(M,)`` at ``x_test: (M,)`` (or ``(M, d)``). ``mse`` is
    measured independently, on fresh noisy test labels drawn for every repeat, so
    ``bias2 + variance + noise`` and ``mse`` agree only up to Monte Carlo error. Returns a dict
    with the keys ``bias2``, ``variance``, ``noise`` and ``mse``.
    """
    if not torch.is_tensor(x_test) or x_test.ndim not in (1, 2) or len(x_test) == 0:
        raise ValueError("x_test must be a non-empty tensor of shape (M,) or (M, d)")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    if not isinstance(n_repeats, int) or n_repeats < 2:
        raise ValueError(f"n_repeats must be an int >= 2, got {n_repeats!r}")
    generator = torch.Generator().manual_seed(seed)
    seeds = torch.randint(0, 2**62, (n_repeats,), generator=generator).tolist()
    target = f_true(x_test).detach().double().cpu().reshape(-1)
    if target.numel() != len(x_test):
        raise ValueError(f"f_true must return one value per x_test row, got {target.numel()}")
    predictions = []
    for repeat_seed in seeds:
        x_train, y_train = sample_train(repeat_seed)
        pred = fit_predict(x_train, y_train, x_test).detach().double().cpu().reshape(-1)
        if pred.shape != target.shape:
            raise ValueError(
                f"fit_predict must return one prediction per x_test row, shape "
                f"{tuple(target.shape)}; got {tuple(pred.shape)}"
            )
        predictions.append(pred)
    preds = torch.stack(predictions)  # (R, M)
    mean_pred = preds.mean(dim=0)
    fresh_noise = noise_std * torch.randn(preds.shape, generator=generator, dtype=torch.float64)
    return {
        "bias2": ((mean_pred - target) ** 2).mean().item(),
        "variance": preds.var(dim=0, unbiased=False).mean().item(),
        "noise": float(noise_std) ** 2,
        "mse": ((target + fresh_noise - preds) ** 2).mean().item(),
    }


def hoeffding_bound(n: int, eps: float, h_size: float = 1) -> float:
    """Hoeffding plus a union bound: ``P(max_h |E_in(h) - E_out(h)| > eps) <= 2|H| e^(-2n eps^2)``.

    Valid for ``n`` i.i.d. samples, a loss in [0, 1] and a finite class of ``h_size`` hypotheses
    fixed before the data are seen (``h_size = 1``: one fixed hypothesis). The value is returned
    unclipped: a result >= 1 is vacuous (it says nothing).
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if not h_size >= 1:
        raise ValueError(f"h_size must be >= 1, got {h_size}")
    return 2.0 * float(h_size) * math.exp(-2.0 * n * eps**2)


def samples_needed(h_size: float, eps: float, delta: float) -> int:
    """Smallest ``N`` with ``2|H| exp(-2 N eps^2) <= delta``: ``ceil(ln(2|H|/delta) / (2 eps^2))``.

    With probability at least ``1 - delta`` every one of the ``h_size`` hypotheses then has
    ``|E_in - E_out| <= eps`` (same assumptions as ``hoeffding_bound``).
    """
    if not h_size >= 1:
        raise ValueError(f"h_size must be >= 1, got {h_size}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return math.ceil(math.log(2.0 * float(h_size) / delta) / (2.0 * eps**2))
