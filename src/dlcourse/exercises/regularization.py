"""Exercise checks for chapter 2.6, Regularization: L1, L2, dropout, early stopping.

References come from the package (``dlcourse.optim.soft_threshold``,
``dlcourse.optim.ridge_closed_form``, ``dlcourse.train.EarlyStopping``) or from a live
computation with ``torch.optim``; messages never print a reference value.
"""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "02-training/06-regularization"


# ---------------------------------------------------------------------------------------------
# 1. Soft-thresholding and ridge regression


def _ridge_solution() -> tuple:
    def soft_threshold(v, t):
        return torch.where(v > t, v - t, torch.where(v < -t, v + t, torch.zeros_like(v)))

    def ridge(X, y, lam):
        xm, ym = X.mean(0), y.mean()
        Xc = X - xm
        w = torch.linalg.solve(
            Xc.T @ Xc + lam * torch.eye(X.shape[1], dtype=X.dtype), Xc.T @ (y - ym)
        )
        return w, ym - xm @ w

    return soft_threshold, ridge


@exercise("ex-regularization-ridge", CHAPTER, solution=_ridge_solution)
def _ridge(answer: Any) -> str:
    """``answer = (soft_threshold(v, t), ridge(X, y, lam) -> (w, b))``."""
    from sklearn.linear_model import Ridge

    from dlcourse.optim import soft_threshold

    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        raise WrongAnswerError("answer must be the pair (soft_threshold, ridge) of two functions")
    soft, ridge = answer
    v = torch.tensor([-1.5, -0.3, 0.2, 2.0, 0.5, -0.5])
    got = call_answer(soft, v, 0.5)
    if torch.is_tensor(got) and got.shape == v.shape and (got.abs() > v.abs()).any():
        raise WrongAnswerError("soft_threshold must move every entry toward zero, never away")
    check_close(got, soft_threshold(v, 0.5), atol=1e-6, name="soft_threshold(v, 0.5)", reveal=False)
    wide = torch.linspace(-3, 3, 13, dtype=torch.float64)
    check_close(call_answer(soft, wide, 0.0), wide, name="soft_threshold(v, 0)", reveal=False)

    def one(case) -> None:
        n, p, lam, seed = case
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(n, p, generator=g, dtype=torch.float64)
        y = X @ torch.randn(p, generator=g, dtype=torch.float64) + 3.0
        y = y + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
        out = call_answer(ridge, X, y, lam)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise WrongAnswerError("ridge must return the pair (w, b): coefficients and intercept")
        ref = Ridge(alpha=lam).fit(X.numpy(), y.numpy())
        w, b = out
        if torch.is_tensor(b) and abs(float(b) - 3.0) > 1.0 and abs(float(b)) < 0.5:
            raise WrongAnswerError(
                "the intercept looks missing: centre X and y, solve for w, then b = mean(y) - "
                "mean(X) @ w (the intercept is not penalized)"
            )
        check_close(w, torch.tensor(ref.coef_), rtol=1e-5, atol=1e-6, name="w", reveal=False)
        check_close(b, torch.tensor(ref.intercept_), rtol=1e-5, atol=1e-6, name="b", reveal=False)

    return over_cases(
        [
            ("n=50, p=5, lam=1", (50, 5, 1.0, 0)),
            ("n=10, p=20 (more features than rows), lam=0.5", (10, 20, 0.5, 1)),
            ("a large lam=1e3", (30, 4, 1e3, 2)),
        ],
        one,
    )


# ---------------------------------------------------------------------------------------------
# 2. Weight decay versus an L2 penalty


def _decay_reference() -> tuple[bool, bool]:
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(5, generator=g, dtype=torch.float64)
    grads = [torch.randn(5, generator=g, dtype=torch.float64) * 10**i for i in range(5)]
    lr, lam = 0.1, 0.05
    w = w0.clone().requires_grad_()
    opt = torch.optim.SGD([w], lr=lr, weight_decay=lam)
    w.grad = grads[0].clone()
    opt.step()
    sgd_same = torch.allclose(w.detach(), w0 * (1 - lr * lam) - lr * grads[0])
    finals = []
    for cls in (torch.optim.Adam, torch.optim.AdamW):
        w = w0.clone().requires_grad_()
        opt = cls([w], lr=lr, weight_decay=lam)
        for grad in grads:
            w.grad = grad.clone()
            opt.step()
        finals.append(w.detach())
    return bool(sgd_same), bool(torch.allclose(*finals))


def _decay_solution() -> tuple[bool, bool]:
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    start, grad = w.detach().clone(), torch.randn(3)
    opt = torch.optim.SGD([w], lr=0.1, weight_decay=0.01)
    w.grad = grad.clone()
    opt.step()
    first = torch.allclose(w.detach(), start * (1 - 0.1 * 0.01) - 0.1 * grad)
    a = start.clone().requires_grad_()
    b = start.clone().requires_grad_()
    opt_a = torch.optim.Adam([a], lr=0.1, weight_decay=0.01)
    opt_b = torch.optim.AdamW([b], lr=0.1, weight_decay=0.01)
    for _ in range(5):
        g = torch.randn(3)
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    return bool(first), bool(torch.allclose(a, b))


@exercise("ex-regularization-decay", CHAPTER, solution=_decay_solution)
def _decay(answer: Any) -> None:
    """``answer = (sgd_step_matches_formula, adam_l2_matches_adamw)``: two booleans."""
    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        raise WrongAnswerError("answer must be a pair of booleans (sgd_same, adam_same)")
    if not all(isinstance(a, bool) or (torch.is_tensor(a) and a.numel() == 1) for a in answer):
        raise WrongAnswerError("each entry must be a boolean, e.g. the result of torch.allclose")
    sgd_same, adam_same = (bool(a) for a in answer)
    expected = _decay_reference()
    if sgd_same != expected[0]:
        raise WrongAnswerError(
            "look again at the SGD step: with weight_decay the gradient becomes g + lambda w, so "
            "w_new = w (1 - lr lambda) - lr g; compare with torch.allclose"
        )
    if adam_same != expected[1]:
        raise WrongAnswerError(
            "look again at Adam versus AdamW: Adam divides the decay term by sqrt(v_hat), AdamW "
            "does not; run both for 5 steps from the same start with the same gradients"
        )
    check_equal((sgd_same, adam_same), expected, name="answer", reveal=False)


# ---------------------------------------------------------------------------------------------
# 3. Inverted dropout


def _dropout_solution():
    def dropout(x, p, training=True):
        if not training:
            return x
        if p == 1:
            return torch.zeros_like(x)
        mask = (torch.rand_like(x) > p).float()
        return mask * x / (1 - p)

    return dropout


@exercise("ex-regularization-dropout", CHAPTER, solution=_dropout_solution)
def _dropout(fn: Any) -> str:
    """``dropout(x, p, training=True)``: inverted dropout with drop probability ``p``."""
    torch.manual_seed(0)
    ones = torch.ones(100_000)

    def train_stats(p: float) -> None:
        out = call_answer(fn, ones, p, True)
        if not torch.is_tensor(out) or out.shape != ones.shape:
            raise WrongAnswerError("dropout must return a tensor of the input's shape")
        kept = out[out != 0]
        keep = kept.numel() / ones.numel()
        if abs(keep - p) < 0.02 and abs(p - 0.5) > 0.05:
            raise WrongAnswerError(
                f"with p={p} about a fraction p of the entries should be *dropped*, not kept"
            )
        if abs(keep - (1 - p)) > 0.02:
            raise WrongAnswerError(f"with p={p} the fraction of kept entries should be about 1-p")
        if kept.numel() and torch.allclose(kept, torch.ones_like(kept)):
            raise WrongAnswerError(
                "kept entries are not rescaled: divide them by (1 - p) so that E[h'] = h"
            )
        check_close(kept, torch.full_like(kept, 1 / (1 - p)), name="kept values", reveal=False)
        if abs(out.mean().item() - 1.0) > 0.02:
            raise WrongAnswerError(f"the mean of dropout(ones, p={p}) should stay close to 1")

    def eval_identity() -> None:
        x = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
        check_close(call_answer(fn, x, 0.5, False), x, name="dropout(x, 0.5, training=False)")

    def drop_all() -> None:
        x = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
        out = call_answer(fn, x, 1.0, True)
        check_close(out, torch.zeros_like(x), name="dropout(x, p=1)")

    return over_cases(
        [
            ("p=0.5 on 1e5 ones", lambda: train_stats(0.5)),
            ("p=0.3 on 1e5 ones", lambda: train_stats(0.3)),
            ("p=0.5 at evaluation (training=False)", eval_identity),
            ("p=1 (drop everything)", drop_all),
        ]
    )


# ---------------------------------------------------------------------------------------------
# 4. Early-stopping logic

VAL_LOSSES = (1.0, 0.8, 0.7, 0.72, 0.69, 0.70, 0.71, 0.73)


def _early_stopping_reference() -> tuple[int, int]:
    from dlcourse.train import EarlyStopping

    hook, state = EarlyStopping(patience=2, restore_best=False), {}
    for epoch, loss in enumerate(VAL_LOSSES):
        state.update(epoch=epoch, val_loss=loss)
        hook.after_epoch(state)
        if state.get("stop"):
            break
    return hook.stop_epoch, hook.best_epoch


def _early_stopping_solution() -> tuple[int, int]:
    best, best_epoch, wait = float("inf"), -1, 0
    for epoch, loss in enumerate(VAL_LOSSES):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait == 2:
                return epoch, best_epoch
    return len(VAL_LOSSES) - 1, best_epoch


@exercise("ex-regularization-early-stopping", CHAPTER, solution=_early_stopping_solution)
def _early_stopping(answer: Any) -> None:
    """``answer = (stop_epoch, best_epoch)``, 0-based, for ``VAL_LOSSES`` and patience 2."""
    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        raise WrongAnswerError("answer must be the pair (stop_epoch, best_epoch)")
    stop, best = answer
    expected_stop, expected_best = _early_stopping_reference()
    if (stop, best) == (expected_stop + 1, expected_best + 1):
        raise WrongAnswerError("count epochs from 0: the first loss is epoch 0")
    if best != expected_best:
        raise WrongAnswerError(
            "best_epoch is the epoch of the lowest validation loss seen before stopping"
        )
    if stop == 3:
        raise WrongAnswerError(
            "the patience counter restarts at every improvement: 0.69 improves on 0.7"
        )
    check_equal(tuple(answer), (expected_stop, expected_best), name="answer", reveal=False)
