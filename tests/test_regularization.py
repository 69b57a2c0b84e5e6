"""Chapter 2.6 kernels: penalties, soft-thresholding, LASSO, ridge, parameter groups,
inverted dropout, pixel shifts, early stopping, the penalty-geometry figure and the checks."""

import matplotlib
import pytest
import torch
from torch import nn

from dlcourse.data import make_sparse_linear, random_shift
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.losses import l1_penalty, l2_penalty
from dlcourse.nn import MLP, inverted_dropout
from dlcourse.optim import (
    lasso_ista,
    lasso_subgradient,
    param_groups,
    ridge_closed_form,
    soft_threshold,
)
from dlcourse.plot import plot_penalty_geometry
from dlcourse.train import EarlyStopping

matplotlib.use("Agg")


def test_soft_threshold_hand_computed():
    got = soft_threshold(torch.tensor([-1.5, -0.3, 0.2, 2.0]), 0.5)
    torch.testing.assert_close(got, torch.tensor([-1.0, 0.0, 0.0, 1.5]))
    with pytest.raises(ValueError, match="t must"):
        soft_threshold(torch.ones(2), -1.0)


def test_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    X, y, _ = make_sparse_linear(40, 6, 2, seed=3)
    y = y + 2.0
    w, b = ridge_closed_form(X, y, 0.7)
    ref = Ridge(alpha=0.7).fit(X.numpy(), y.numpy())
    torch.testing.assert_close(w, torch.tensor(ref.coef_))
    torch.testing.assert_close(b, torch.tensor(ref.intercept_))
    with pytest.raises(ValueError, match="y must"):
        ridge_closed_form(X, y[:-1], 0.7)


def test_lasso_ista_matches_sklearn_and_gives_exact_zeros():
    from sklearn.linear_model import Lasso

    X, y, _ = make_sparse_linear(100, 20, 3)
    w = lasso_ista(X, y, 0.1, steps=3000)
    ref = Lasso(alpha=0.1, fit_intercept=False, tol=1e-10).fit(X.numpy(), y.numpy())
    torch.testing.assert_close(w, torch.tensor(ref.coef_), atol=1e-4, rtol=0)
    assert (w == 0).sum() == (ref.coef_ == 0).sum() >= 15


def test_subgradient_lasso_never_lands_on_zero():
    X, y, _ = make_sparse_linear(100, 20, 3)
    w = lasso_subgradient(X, y, 0.1, steps=2000)
    assert (w == 0).sum() == 0 and w.abs().min() < 0.05
    with pytest.raises(ValueError, match="steps"):
        lasso_subgradient(X, y, 0.1, steps=0)


def test_penalties_and_their_gradients():
    a, b = torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([[3.0]], requires_grad=True)
    assert l1_penalty([a, b]).item() == 6.0 and l2_penalty([a, b]).item() == 14.0
    l2_penalty([a, b]).backward()
    torch.testing.assert_close(a.grad, 2 * a.detach())
    with pytest.raises(TypeError, match="params"):
        l1_penalty([a, 3.0])


def test_sgd_weight_decay_is_twice_the_l2_penalty():
    w0 = torch.randn(4, generator=torch.Generator().manual_seed(0))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    finals = []
    for decay, lam in ((0.2, 0.0), (0.0, 0.1)):
        w = w0.clone().requires_grad_()
        opt = torch.optim.SGD([w], lr=0.1, weight_decay=decay)
        for _ in range(3):
            loss = (x @ w).pow(2).mean() + lam * l2_penalty(w)
            opt.zero_grad()
            loss.backward()
            opt.step()
        finals.append(w.detach())
    torch.testing.assert_close(*finals)


def test_param_groups_split_biases_and_norms_and_torch_accepts_them():
    model = MLP(8, [16], 3, norm="batch")
    groups = param_groups(model, 0.05)
    decayed = {id(p) for p in groups[0]["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in decayed} == {"hidden.0.0.weight", "out.weight"}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    opt = torch.optim.AdamW(groups, lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(model, -1.0)


def test_inverted_dropout_statistics_match_torch():
    x = torch.ones(100_000)
    g = torch.Generator().manual_seed(0)
    for p in (0.3, 0.5):
        ours = inverted_dropout(x, p, generator=g)
        theirs = nn.functional.dropout(x, p, training=True)
        for out in (ours, theirs):
            kept = out[out != 0]
            assert abs(kept.numel() / x.numel() - (1 - p)) < 0.02
            torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))
            assert abs(out.mean().item() - 1) < 0.02


def test_inverted_dropout_eval_and_edge_rates_match_torch():
    x = torch.randn(5, 6)
    torch.testing.assert_close(inverted_dropout(x, 0.5, training=False), x)
    torch.testing.assert_close(nn.functional.dropout(x, 0.5, training=False), x)
    torch.testing.assert_close(inverted_dropout(x, 1.0), nn.functional.dropout(x, 1.0))
    torch.testing.assert_close(inverted_dropout(x, 0.0), x)
    with pytest.raises(ValueError, match="p must"):
        inverted_dropout(x, 1.5)


def test_random_shift_moves_pixels_and_keeps_shape():
    x = torch.zeros(50, 5, 5)
    x[:, 2, 2] = 1.0
    out = random_shift(x, 1, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.all(out.sum((1, 2)) == 1)
    rows, cols = out.nonzero()[:, 1], out.nonzero()[:, 2]
    assert rows.min() >= 1 and rows.max() <= 3 and cols.min() >= 1 and cols.max() <= 3
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 9
    assert random_shift(x.unsqueeze(1), 1).shape == (50, 1, 5, 5)
    with pytest.raises(ValueError, match="x must"):
        random_shift(torch.zeros(5, 5))


def test_early_stopping_stops_after_patience_and_restores_best():
    model = nn.Linear(1, 1)
    hook, state = EarlyStopping(patience=2), {"model": model}
    for epoch, loss in enumerate([1.0, 0.8, 0.7, 0.72, 0.69, 0.70, 0.71, 0.73]):
        with torch.no_grad():
            model.weight.fill_(epoch)
        state.update(epoch=epoch, val_loss=loss)
        hook.after_epoch(state)
        if state.get("stop"):
            break
    assert (hook.stop_epoch, hook.best_epoch) == (6, 4)
    assert model.weight.item() == 4.0
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


def test_plot_penalty_geometry_draws_and_validates():
    ax = plot_penalty_geometry(
        torch.tensor([[2.0, 0.5], [0.5, 1.0]]), torch.tensor([1.5, 0.5]), 0.5
    )
    assert len(ax.lines) >= 4
    with pytest.raises(ValueError, match="H must"):
        plot_penalty_geometry(torch.eye(3), torch.zeros(2), 0.5)
    matplotlib.pyplot.close("all")


def test_regularization_checks_reject_typical_mistakes():
    with pytest.raises(WrongAnswerError, match="rescaled"):
        check("ex-regularization-dropout", lambda x, p, training=True: x * (torch.rand_like(x) > p))
    with pytest.raises(WrongAnswerError, match="from 0"):
        check("ex-regularization-early-stopping", (7, 5))
    with pytest.raises(WrongAnswerError, match="SGD"):
        check("ex-regularization-decay", (False, False))
    with pytest.raises(WrongAnswerError, match="Adam"):
        check("ex-regularization-decay", (True, True))
    shrink = lambda v, t: torch.sign(v) * torch.clamp(v.abs() - t, min=0)  # noqa: E731

    def no_intercept(X, y, lam):
        w = torch.linalg.solve(X.T @ X + lam * torch.eye(X.shape[1], dtype=X.dtype), X.T @ y)
        return w, torch.zeros((), dtype=X.dtype)

    with pytest.raises(WrongAnswerError, match="intercept"):
        check("ex-regularization-ridge", (shrink, no_intercept))
