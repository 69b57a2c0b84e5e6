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

from .data import minibatches

__all__ = [
    "EarlyStopping",
    "HOOK_EVENTS",
    "History",
    "Hook",
    "Registry",
    "accuracy",
    "benchmark",
    "bias_variance_decomposition",
    "build_from_cfg",
    "call_hooks",
    "count_modules",
    "count_params",
    "count_params_meta",
    "device",
    "env_report",
    "evaluate",
    "fit",
    "freeze",
    "global_grad_norm",
    "hoeffding_bound",
    "iterations_per_epoch",
    "k_step_forecast",
    "layer_grad_norms",
    "linear_probe",
    "lr_groups",
    "lr_sweep",
    "merge_cfg",
    "minibatch_grad_variance",
    "perplexity",
    "perplexity_from_probs",
    "samples_needed",
    "seed_everything",
    "train_causal_lm",
    "trainable_names",
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
        for xb, yb in minibatches(x, y, batch_size=batch_size, generator=generator):
            xb, yb = xb.to(dev), yb.to(dev)
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
# Gradient monitoring (chapter 1.2; clipping is chapter 2.8)


def global_grad_norm(params: Iterable[torch.Tensor] | torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """The p-norm of all ``.grad`` tensors of ``params`` concatenated into one vector.

    :math:`\\lVert g\\rVert_p = (\\sum_i |g_i|^p)^{1/p}` over every entry of every gradient;
    ``p = inf`` gives :math:`\\max_i |g_i|`. Computed as the p-norm of the per-tensor p-norms
    (the same number, without concatenating). Parameters whose ``.grad`` is ``None`` are
    skipped; with no gradient at all the result is ``tensor(0.)``. Returns a 0-dim tensor on the
    device of the first gradient, detached (a monitoring signal, not part of the graph).
    """
    if torch.is_tensor(params):
        params = [params]
    params = list(params)
    for i, param in enumerate(params):
        if not torch.is_tensor(param):
            raise TypeError(f"params must hold tensors, item {i} is {type(param).__name__}")
    p = float(p)
    if not p >= 1.0:  # also rejects NaN
        raise ValueError(f"p must be >= 1 (or inf) for a norm, got {p}")
    grads = [param.grad.detach() for param in params if param.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    dtype = grads[0].dtype
    for g in grads[1:]:
        dtype = torch.promote_types(dtype, g.dtype)
    dev = grads[0].device
    norms = [torch.linalg.vector_norm(g.to(dtype), ord=p).to(dev) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms), ord=p)


# =============================================================================================
# Chapter 1.6: counting parameters without memory, per-layer gradient norms, and the
# framework patterns (hooks, registries, configs)
# =============================================================================================


def count_params_meta(builder: Callable[[], nn.Module]) -> int:
    """Number of parameters of ``builder()``, built on the ``meta`` device.

    Meta tensors carry a shape and a dtype but no storage, so a model of billions of
    parameters is counted in milliseconds without allocating its weights. Shared parameters
    are counted once (``parameters()`` deduplicates them). ``builder`` takes no argument, e.g.
    ``lambda: nn.Linear(8192, 8192)``; it must not pass an explicit ``device=``.
    """
    if not callable(builder):
        raise TypeError(f"builder must be a callable returning an nn.Module, got {builder!r}")
    with torch.device("meta"):
        model = builder()
    if not isinstance(model, nn.Module):
        raise TypeError(f"builder must return an nn.Module, got {type(model).__name__}")
    return count_params(model)


def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """``{parameter name: ||grad||_2}`` for every parameter that has a gradient.

    Call after ``loss.backward()``; names are those of ``model.named_parameters()`` (e.g.
    ``"0.weight"``), in registration order. Parameters without a gradient are left out.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    named = [(name, p.grad) for name, p in model.named_parameters() if p.grad is not None]
    if not named:
        raise ValueError("model has no parameter with a gradient: call loss.backward() first")
    norms = torch.stack([torch.linalg.vector_norm(g.detach().double()) for _, g in named])
    return dict(zip((name for name, _ in named), norms.tolist(), strict=True))


HOOK_EVENTS = (
    "before_run",
    "before_epoch",
    "before_iter",
    "after_iter",
    "after_epoch",
    "after_run",
)


class Hook:
    """Code a training loop calls at fixed points; subclass and override what you need.

    A loop calls, with one shared ``state: dict`` (model, optimizer, epoch, step, loss, ...)::

        before_run
          before_epoch  (before_iter  after_iter) * steps  after_epoch   * epochs
        after_run

    Every method is a no-op here. Hooks keep logging, checkpoints, schedules and early
    stopping out of the loop itself.
    """

    def before_run(self, state: dict) -> None:
        pass

    def before_epoch(self, state: dict) -> None:
        pass

    def before_iter(self, state: dict) -> None:
        pass

    def after_iter(self, state: dict) -> None:
        pass

    def after_epoch(self, state: dict) -> None:
        pass

    def after_run(self, state: dict) -> None:
        pass


def call_hooks(hooks: Iterable[Hook], event: str, state: dict) -> None:
    """Call ``hook.<event>(state)`` on each hook, in order; ``event`` is one of ``HOOK_EVENTS``."""
    if event not in HOOK_EVENTS:
        raise ValueError(f"event must be one of {HOOK_EVENTS}, got {event!r}")
    for hook in hooks:
        getattr(hook, event)(state)


class Registry:
    """A name -> class (or function) table, so that a config can name what to build.

    ``@MODELS.register()`` registers a class under its ``__name__``;
    ``MODELS.register("mlp")(SomeClass)`` under another name. Registering a taken name raises
    ``KeyError`` unless ``force=True``. ``get(name)`` looks it up.
    """

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self._table: dict[str, Any] = {}

    def register(self, name: str | None = None, force: bool = False) -> Callable[[Any], Any]:
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"name must be a string or None, got {type(name).__name__} "
                "(write @registry.register(), with parentheses)"
            )

        def add(obj: Any) -> Any:
            key = name or getattr(obj, "__name__", None)
            if not key:
                raise ValueError(f"cannot register {obj!r} without a name")
            if key in self._table and not force:
                raise KeyError(f"{key!r} is already registered in {self.name!r} (force=True)")
            self._table[key] = obj
            return obj

        return add

    def get(self, name: str) -> Any:
        if name not in self._table:
            raise KeyError(f"{name!r} is not in registry {self.name!r}; known: {sorted(self)}")
        return self._table[name]

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self):
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {sorted(self._table)})"


def build_from_cfg(cfg: dict, registry: Registry, **defaults: Any) -> Any:
    """Instantiate ``registry.get(cfg["type"])(**{**defaults, **rest of cfg})``.

    ``cfg = {"type": "MLP", "hidden": 64}`` builds ``MLP(hidden=64)``; ``defaults`` are
    arguments the config does not hold (e.g. ``params=model.parameters()`` for an optimizer).
    ``cfg["type"]`` may also be the class itself. ``cfg`` is not modified.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dict, got {type(cfg).__name__}")
    if "type" not in cfg:
        raise ValueError(f"cfg must have a 'type' key naming what to build, got keys {list(cfg)}")
    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a Registry, got {type(registry).__name__}")
    kind = cfg["type"]
    target = registry.get(kind) if isinstance(kind, str) else kind
    if not callable(target):
        raise TypeError(f"cfg['type'] must name a class or a function, got {kind!r}")
    kwargs = {**defaults, **{k: v for k, v in cfg.items() if k != "type"}}
    return target(**kwargs)


def _resolve_base(cfg: dict) -> dict:
    """``cfg`` with every ``_base_`` (a dict or a list of dicts), at every level, merged in."""
    own = {k: _resolve_base(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    bases = own.pop("_base_", [])
    bases = [bases] if isinstance(bases, dict) else bases
    if not isinstance(bases, list | tuple) or not all(isinstance(b, dict) for b in bases):
        raise TypeError(f"_base_ must be a dict or a list of dicts, got {bases!r}")
    merged: dict = {}
    for parent in bases:
        merged = _merge_dicts(merged, _resolve_base(parent))
    return _merge_dicts(merged, own) if bases else own


def _merge_dicts(base: dict, override: dict) -> dict:
    """A new dict: ``override`` merged into ``base``; ``_delete_`` honoured and dropped."""
    merged = {
        k: _merge_dicts({}, v) if isinstance(v, dict) else v
        for k, v in base.items()
        if k != "_delete_"
    }
    for key, value in override.items():
        if key == "_delete_":
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            keep = not value.get("_delete_", False)
            merged[key] = _merge_dicts(merged[key] if keep else {}, value)
        elif isinstance(value, dict):
            merged[key] = _merge_dicts({}, value)
        else:
            merged[key] = value
    return merged


def merge_cfg(base: dict, override: dict) -> dict:
    """Merge two configs recursively, as config inheritance in detection frameworks does.

    Dicts are merged key by key (``override`` wins on leaves: numbers, strings, lists);
    a dict in ``override`` holding ``"_delete_": True`` replaces ``base``'s subtree instead of
    being merged into it. A ``"_base_"`` key (a dict or a list of dicts), in either config or
    in a nested dict, names parent configs: they are merged first, in order, then the dict
    that names them. Neither input is modified; the result holds no ``_base_``/``_delete_``.
    """
    for name, value in (("base", base), ("override", override)):
        if not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
    return _merge_dicts(_resolve_base(base), _resolve_base(override))


# Parameter counts and linear probes (chapter 1.4)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter entries of ``model``; with ``trainable_only``, only those with
    ``requires_grad``. A fully connected layer ``d_in -> d_out`` has ``d_in d_out + d_out``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def linear_probe(
    train_feats: torch.Tensor,
    train_y: torch.Tensor,
    test_feats: torch.Tensor,
    test_y: torch.Tensor,
    l2: float = 1e-3,
    epochs: int = 200,
) -> float:
    """Test accuracy of a multinomial logistic regression trained on frozen features.

    ``train_feats: (N, D)``, ``train_y: (N,)`` int64, ``test_feats: (M, D)``, ``test_y: (M,)``.
    The features are standardised with the training mean and standard deviation; the
    classifier :math:`\\mathrm{softmax}(Wx + b)` minimises the mean cross-entropy plus
    :math:`\\tfrac{l_2}{2}\\lVert W\\rVert^2` by full-batch L-BFGS for at most ``epochs``
    iterations, from zero weights: deterministic, no learning rate to tune. The number of
    classes is ``max(train_y, test_y) + 1``.
    """
    for name, feats, labels in (("train", train_feats, train_y), ("test", test_feats, test_y)):
        if feats.ndim != 2 or labels.shape != feats.shape[:1]:
            raise ValueError(
                f"{name}_feats must be (N, D) and {name}_y (N,); got {tuple(feats.shape)} "
                f"and {tuple(labels.shape)}"
            )
        if labels.dtype != torch.int64:
            raise ValueError(f"{name}_y must be int64 class indices, got {labels.dtype}")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            f"train_feats and test_feats must have the same width, got {train_feats.shape[1]} "
            f"and {test_feats.shape[1]}"
        )
    if l2 < 0 or epochs < 1:
        raise ValueError(f"l2 must be >= 0 and epochs >= 1, got {l2} and {epochs}")
    dev = train_feats.device
    x_train = train_feats.detach().float()
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    x_train = (x_train - mean) / std
    x_test = (test_feats.detach().float().to(dev) - mean) / std
    n_classes = int(max(train_y.max().item(), test_y.max().item())) + 1
    W = torch.zeros(n_classes, x_train.shape[1], device=dev, requires_grad=True)
    b = torch.zeros(n_classes, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b], lr=1.0, max_iter=epochs, history_size=20, line_search_fn="strong_wolfe"
    )
    y_train = train_y.to(dev)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(x_train @ W.T + b, y_train)
        loss = loss + 0.5 * l2 * (W**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return accuracy(x_test @ W.T + b, test_y.to(dev))


# ---------------------------------------------------------------------------------------------
# Chapter 2.5 (generalization): bias-variance by simulation, Hoeffding and the union bound


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


# =============================================================================================
# Chapter 2.4: a learning-rate sweep


def lr_sweep(
    make_model: Callable[[], nn.Module],
    make_opt: Callable[[Iterable[torch.Tensor], float], torch.optim.Optimizer],
    lrs: Iterable[float],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    epochs: int = 3,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[float, float]:
    """Final validation loss of a short ``fit`` for each learning rate: ``{lr: loss}``.

    For every ``lr`` the same seed gives the same initial model (``make_model()`` after
    ``torch.manual_seed(seed)``, on whatever device it builds on) and the same batches; the
    optimizer is ``make_opt(model.parameters(), lr)``. A run whose loss is NaN or infinite
    (it diverged) scores ``math.inf``, so ``min(result, key=result.get)`` is the best rate.
    """
    lrs = [float(lr) for lr in lrs]
    if not lrs or not all(lr > 0 for lr in lrs):
        raise ValueError(f"lrs must be a non-empty sequence of positive rates, got {lrs!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    for name, pair in (("train", train), ("val", val)):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValueError(f"{name} must be a pair (x, y), got {type(pair).__name__}")
    results = {}
    for lr in lrs:
        torch.manual_seed(seed)
        model = make_model()
        opt = make_opt(model.parameters(), lr)
        fit(
            model, *train, epochs=epochs, batch_size=batch_size, optimizer=opt,
            generator=torch.Generator().manual_seed(seed), progress=False,
        )  # fmt: skip
        loss = evaluate(model, *val)["loss"]
        results[lr] = loss if math.isfinite(loss) else math.inf
    return results


# ---------------------------------------------------------------------------------------------
# Chapter 2.6 (regularization): early stopping as a hook


class EarlyStopping(Hook):
    """Stop when a validation quantity has not improved for ``patience`` epochs.

    After each epoch the loop puts the monitored value in ``state[monitor]`` (``"val_loss"``
    by default; use ``mode="max"`` for an accuracy) and the epoch index in ``state["epoch"]``.
    An epoch *improves* when the value beats the best so far by more than ``min_delta``. After
    ``patience`` epochs in a row without improvement the hook sets ``state["stop"] = True`` and,
    with ``restore_best``, loads the best weights (a copy kept on improvement) back into
    ``state["model"]``; ``after_run`` restores them too when the run ended without a stop.
    Attributes: ``best``, ``best_epoch``, ``stop_epoch`` (``None`` until it fires), ``wait``.
    """

    def __init__(
        self,
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best: bool = True,
        monitor: str = "val_loss",
    ):
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.min_delta, self.mode = patience, float(min_delta), mode
        self.restore_best, self.monitor = restore_best, monitor
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stop_epoch: int | None = None
        self.wait = 0
        self._best_state: dict | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _restore(self, state: dict) -> None:
        model = state.get("model")
        if self.restore_best and model is not None and self._best_state is not None:
            model.load_state_dict(self._best_state)

    def after_epoch(self, state: dict) -> None:
        if self.monitor not in state:
            raise ValueError(f"state must hold the monitored value {self.monitor!r}")
        value, epoch = float(state[self.monitor]), state.get("epoch")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            model = state.get("model")
            if self.restore_best and model is not None:
                self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience and self.stop_epoch is None:
            self.stop_epoch = epoch
            state["stop"] = True
            self._restore(state)

    def after_run(self, state: dict) -> None:
        if self.stop_epoch is None:
            self._restore(state)


# ---------------------------------------------------------------------------------------------
# Epochs, iterations and minibatch gradient noise (chapter 2.1)


def iterations_per_epoch(n: int, batch_size: int, drop_last: bool = False) -> int:
    r"""Updates per pass over ``n`` examples: $\lceil n/B\rceil$, or $\lfloor n/B\rfloor$ with
    ``drop_last`` (the same as ``len(DataLoader(...))``)."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return n // batch_size if drop_last else -(-n // batch_size)


def minibatch_grad_variance(
    per_sample_grads: torch.Tensor,
    batch_sizes: Iterable[int],
    n_draws: int = 2000,
    replace: bool = False,
    seed: int = 0,
) -> dict[int, float]:
    r"""Total variance $\mathbb E\|\mathbf g_B - \nabla L\|^2$ of the minibatch mean gradient.

    ``per_sample_grads``: ``(N, P)``, one gradient $\nabla\ell_i$ per row; $\nabla L$ is their mean.
    For each batch size $m$, ``n_draws`` batches are drawn uniformly (with or without
    replacement) and the squared distances of their means to $\nabla L$ are averaged. Theory:
    $\sigma^2/m$ with replacement, times $(N-m)/(N-1)$ without, where $\sigma^2$ is the total
    per-sample variance (divided by $N$).
    """
    if not torch.is_tensor(per_sample_grads) or per_sample_grads.ndim != 2:
        raise ValueError(
            f"per_sample_grads must be (N, P), got {getattr(per_sample_grads, 'shape', None)}"
        )
    n = per_sample_grads.shape[0]
    sizes = [int(m) for m in batch_sizes]
    if any(m < 1 or (not replace and m > n) for m in sizes):
        raise ValueError(f"batch_sizes must be in [1, N={n}] (any size >= 1 with replace), {sizes}")
    if not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    grads = per_sample_grads.double()
    full = grads.mean(0)
    generator = torch.Generator().manual_seed(int(seed))
    sq_err = {m: 0.0 for m in sizes}
    chunk = max(1, min(n_draws, 2_000_000 // max(n * grads.shape[1], 1)))
    for start in range(0, n_draws, chunk):
        draws = min(chunk, n_draws - start)
        # one fresh random permutation per draw; its first m rows form a batch without replacement
        perms = None if replace else torch.rand(draws, n, generator=generator).argsort(dim=1)
        for m in sizes:
            if replace:
                idx = torch.randint(n, (draws, m), generator=generator)
            else:
                idx = perms[:, :m]
            means = grads[idx.to(grads.device)].mean(1)  # (draws, P)
            sq_err[m] += ((means - full) ** 2).sum(1).sum().item()
    out = {m: total / n_draws for m, total in sq_err.items()}
    return out


# ---------------------------------------------------------------------------------------------
# Chapter 4.1: perplexity and k-step-ahead forecasting


def perplexity(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> float:
    r"""$\mathrm{PPL}=\exp\big(-\frac1n\sum_t\log\mathrm{softmax}(z_t)_{y_t}\big)$: the exponential
    of the mean cross-entropy (in nats) over the ``n`` counted positions.

    ``logits: (N, V)`` or ``(B, T, V)``; ``targets: (N,)`` or ``(B, T)`` int64 ids; positions
    whose target is ``ignore_index`` (padding) are not counted. A uniform model scores exactly
    ``V``, a perfect one 1.
    """
    from .losses import cross_entropy

    if not torch.is_tensor(logits) or logits.ndim not in (2, 3):
        raise ValueError(
            f"logits must be (N, V) or (B, T, V), got {tuple(getattr(logits, 'shape', ()))}"
        )
    if not torch.is_tensor(targets) or targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets must have shape {tuple(logits.shape[:-1])} (logits without the last "
            f"dimension), got {tuple(getattr(targets, 'shape', ()))}"
        )
    ce = cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index)
    return math.exp(ce.item())


def perplexity_from_probs(p_true: torch.Tensor) -> float:
    r"""$\big(\prod_t 1/p_t\big)^{1/n}=\exp\big(-\frac1n\sum_t\log p_t\big)$: the geometric mean
    of the inverse probabilities the model gave the *observed* tokens, ``p_true: (n,)`` (any
    shape is flattened). ``inf`` as soon as one observed token had probability 0."""
    p = torch.as_tensor(p_true, dtype=torch.float64).flatten()
    if p.numel() == 0:
        raise ValueError("p_true must hold at least one probability")
    if torch.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_true must hold probabilities in [0, 1]")
    return math.exp(-torch.log(p).mean().item())


@torch.no_grad()
def k_step_forecast(model: nn.Module, x: torch.Tensor, tau: int, k: int) -> torch.Tensor:
    r"""Predictions up to ``k`` steps ahead, each step fed back as an input of the next.

    ``model`` maps ``(N, tau)`` past values to ``(N, 1)`` or ``(N,)`` next values. For every
    start ``i`` it sees only ``x[i : i + tau]``; column ``j`` of the result is the
    $(j+1)$-step-ahead prediction $\hat x_{i+\tau+j}$. Returns ``(T - tau - k + 1, k)`` on the
    model's device; column ``j`` lines up with ``x[tau + j : T - k + 1 + j]``.
    """
    if not torch.is_tensor(x) or x.ndim != 1:
        raise ValueError(f"x must be a 1-D tensor (T,), got {getattr(x, 'shape', type(x))}")
    if not isinstance(tau, int) or tau < 1:
        raise ValueError(f"tau must be a positive int, got {tau!r}")
    if not isinstance(k, int) or not 1 <= k <= len(x) - tau:
        raise ValueError(f"k must be an int in [1, T - tau = {len(x) - tau}], got {k!r}")
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    n_starts = len(x) - tau - k + 1
    window = x.to(dev).unfold(0, tau, 1)[:n_starts].clone()  # (N, tau), observed values only
    preds = []
    for _ in range(k):
        nxt = model(window).reshape(n_starts)
        preds.append(nxt)
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    model.train(was_training)
    return torch.stack(preds, dim=1)


# ---------------------------------------------------------------------------------------------
# Chapter 3.3: counting modules of a type (e.g. the Conv2d layers of a ResNet)
# =============================================================================================


def count_modules(model: nn.Module, cls: type | tuple[type, ...]) -> int:
    """Number of submodules of ``model`` (itself included) that are instances of ``cls``.

    ``count_modules(resnet50, nn.Conv2d)`` counts every convolution, the projection shortcuts
    included. Works on ``meta``-device models, since it only walks ``model.modules()``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    classes = cls if isinstance(cls, tuple) else (cls,)
    if not classes or not all(isinstance(c, type) for c in classes):
        raise TypeError(f"cls must be a class or a tuple of classes, got {cls!r}")
    return sum(isinstance(m, classes) for m in model.modules())


# ---------------------------------------------------------------------------------------------
# Chapter 3.4: freezing layers and per-group learning rates for transfer learning


def freeze(model: nn.Module, trainable: Callable[[str], bool] = lambda name: False) -> None:
    """``p.requires_grad_(trainable(name))`` for every named parameter, in place.

    The default freezes everything. Setting a Python attribute on a module
    (``model.fc.requires_grad = True``) changes no parameter: use this function or
    ``module.requires_grad_(True)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(trainable):
        raise TypeError("trainable must be a callable name -> bool")
    for name, p in model.named_parameters():
        p.requires_grad_(bool(trainable(name)))


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters with ``requires_grad=True``, in ``named_parameters`` order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return [name for name, p in model.named_parameters() if p.requires_grad]


def lr_groups(model: nn.Module, head_prefix: str, head_lr: float, backbone_lr: float) -> list[dict]:
    """Two optimizer parameter groups: the head (names starting with ``head_prefix``) at
    ``head_lr`` and the rest, the pretrained backbone, at the usually smaller ``backbone_lr``.

    Frozen parameters (``requires_grad=False``) are left out. Pass the result to any
    ``torch.optim`` optimizer: ``torch.optim.Adam(lr_groups(model, "fc", 1e-3, 1e-4))``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if head_lr < 0 or backbone_lr < 0:
        raise ValueError(f"head_lr and backbone_lr must be >= 0, got {head_lr}, {backbone_lr}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in named if n.startswith(head_prefix)]
    if not head:
        raise ValueError(f"head_prefix {head_prefix!r} matches no trainable parameter")
    backbone = [p for n, p in named if not n.startswith(head_prefix)]
    return [{"params": head, "lr": head_lr}, {"params": backbone, "lr": backbone_lr}]


# ---------------------------------------------------------------------------------------------
# Chapters 5.3 and 5.4: training a causal language model on random windows of a text


def train_causal_lm(
    model: nn.Module,
    ids: torch.Tensor,
    steps: int,
    batch_size: int = 16,
    block: int = 64,
    lr: float = 1e-2,
    warmup_steps: int = 30,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train ``model(x: (B, T)) -> logits (B, T, V)`` as a next-token predictor on ``ids``.

    Each step draws ``batch_size`` random windows of ``block`` tokens and their shifted targets
    (``dlcourse.text.lm_batches``), takes the mean cross-entropy
    (``dlcourse.losses.causal_lm_loss``) and an AdamW step whose rate warms up linearly over
    ``warmup_steps`` and then decays to 0 along a cosine (``dlcourse.optim.cosine_lr``).
    Batches go to the model's device. Returns the training loss of every step.
    """
    from .losses import causal_lm_loss
    from .optim import cosine_lr
    from .text import lm_batches

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    dev = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        x, y = (t.to(dev) for t in lm_batches(ids, batch_size, block, generator=generator))
        loss = causal_lm_loss(model(x), y, shift=False)
        optimizer.zero_grad()
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup_steps=warmup_steps)
        optimizer.step()
        losses.append(loss.item())
    return losses
