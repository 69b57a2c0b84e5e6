"""One look for every figure in the book.

``use_course_style()`` sets sizes, grid and the Okabe-Ito colour cycle (safe for the common
forms of colour blindness); it never changes the matplotlib backend, so figures still reach
the built website. The helpers below draw the few kinds of figure chapters share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler

__all__ = [
    "DIVERGING_CMAP",
    "PALETTE",
    "SEQUENTIAL_CMAP",
    "attention_map",
    "computation_graph",
    "curves",
    "draw_boxes",
    "heatmap",
    "image_grid",
    "plot_contour_paths",
    "plot_decision_boundary",
    "plot_functions",
    "plot_gradient_field",
    "plot_layer_stats",
    "plot_linear_map",
    "plot_penalty_geometry",
    "plot_schedules",
    "plot_surface",
    "plot_train_val_curves",
    "scatter2d",
    "show_masks",
    "use_course_style",
]

# Okabe & Ito (2008), "Color Universal Design": distinguishable under deuteranopia,
# protanopia and tritanopia. Black is left out of the cycle; it is kept for reference lines.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
_CYCLE = [PALETTE[k] for k in ("blue", "orange", "green", "vermillion", "sky", "purple", "yellow")]
SEQUENTIAL_CMAP = "viridis"  # perceptually uniform and colour-blind safe
DIVERGING_CMAP = "PuOr"


def use_course_style() -> None:
    """Apply the book's matplotlib style (call once per chapter; idempotent)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.0, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.constrained_layout.use": True,
            "axes.prop_cycle": cycler(color=_CYCLE),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "lines.linewidth": 1.8,
            "image.cmap": SEQUENTIAL_CMAP,
        }
    )


def curves(
    series: Mapping[str, Sequence[float]],
    x: Sequence[float] | None = None,
    *,
    ax: plt.Axes | None = None,
    xlabel: str = "step",
    ylabel: str = "",
    logy: bool = False,
    title: str | None = None,
) -> plt.Axes:
    """Plot several named series against a shared ``x`` (default 0, 1, ...)."""
    if not series:
        raise ValueError("series must contain at least one named sequence")
    ax = ax or plt.subplots()[1]
    for name, values in series.items():
        values = np.asarray(values, dtype=float)
        xs = np.arange(len(values)) if x is None else np.asarray(x)[: len(values)]
        ax.plot(xs, values, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    return ax


def _as_image_batch(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A float CPU tensor ``(N, H, W)`` (one channel squeezed) or ``(N, C, H, W)``."""
    images = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    images = images.detach().cpu().float()
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got {tuple(images.shape)}")
    return images


def image_grid(
    images: torch.Tensor | np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    cmap: str = "gray_r",
    scale: float = 1.1,
    symmetric: bool = False,
) -> plt.Figure:
    """Show ``(N, H, W)`` or ``(N, 1, H, W)`` images (or ``(N, 3, H, W)`` colour) in a grid.

    ``symmetric=True`` centres the colour map on zero (for kernels and signed feature maps).
    """
    images = _as_image_batch(images)
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(scale * ncols, scale * nrows + (0.25 * nrows if labels else 0)),
        squeeze=False,
    )
    vmax = images.abs().max().item() if symmetric else None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        if img.ndim == 3:
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
        elif symmetric:
            ax.imshow(img.numpy(), cmap=DIVERGING_CMAP, vmin=-vmax, vmax=vmax)
        else:
            ax.imshow(img.numpy(), cmap=cmap)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    return fig


def scatter2d(
    clouds: Mapping[str, torch.Tensor | np.ndarray],
    *,
    ax: plt.Axes | None = None,
    size: float = 3.0,
    lim: float | None = None,
    title: str | None = None,
) -> plt.Axes:
    """Overlay named 2-D point clouds ``(N, 2)`` with equal axes."""
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    for name, points in clouds.items():
        points = np.asarray(torch.as_tensor(points).detach().cpu())
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"cloud {name!r} must be (N, 2), got {points.shape}")
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.6, label=name, linewidths=0)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
    if len(clouds) > 1:
        ax.legend(markerscale=3)
    return ax


def attention_map(
    weights: torch.Tensor | np.ndarray,
    q_labels: Sequence[str] | None = None,
    k_labels: Sequence[str] | None = None,
    *,
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> plt.Axes:
    """Heat map of attention weights ``(n_queries, n_keys)``; rows are queries."""
    w = np.asarray(torch.as_tensor(weights).detach().cpu(), dtype=float)
    if w.ndim != 2:
        raise ValueError(f"weights must be (n_queries, n_keys), got shape {w.shape}")
    ax = ax or plt.subplots(figsize=(3.6, 3.2))[1]
    image = ax.imshow(w, cmap=SEQUENTIAL_CMAP, vmin=0.0, vmax=max(1e-12, w.max()))
    ax.grid(False)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if k_labels is not None:
        ax.set_xticks(range(len(k_labels)), k_labels, rotation=90)
    if q_labels is not None:
        ax.set_yticks(range(len(q_labels)), q_labels)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax


def _graph_layout(order: list) -> dict[int, tuple[float, float]]:
    """Column = longest path from a leaf; row = mean row of the parents, then de-overlapped."""
    depth: dict[int, int] = {}
    for node in order:
        depth[id(node)] = 1 + max((depth[id(p)] for p in node.parents), default=-1)
    pos: dict[int, tuple[float, float]] = {}
    leaves = [n for n in order if not n.parents]
    for row, leaf in enumerate(leaves):
        pos[id(leaf)] = (0.0, -float(row))
    for level in range(1, max(depth.values(), default=0) + 1):
        column = [n for n in order if depth[id(n)] == level]
        wanted = sorted(
            (sum(pos[id(p)][1] for p in n.parents) / len(n.parents), i)
            for i, n in enumerate(column)
        )
        last = math.inf
        for y, i in sorted(wanted, reverse=True):  # top to bottom, at least one row apart
            y = min(y, last - 1.0)
            pos[id(column[i])] = (float(level), y)
            last = y
    return pos


def computation_graph(root, ax: plt.Axes | None = None, precision: int = 2) -> plt.Axes:
    """Draw the graph that produced ``root`` (a ``dlcourse.autograd.Value``): one box per node
    with its label, operation, forward value and gradient (after ``root.backward()``); arrows
    follow the forward pass. Leaves are blue, operations orange.
    """
    from .autograd import Value

    if not isinstance(root, Value):
        raise TypeError(f"root must be a dlcourse.autograd.Value, got {type(root).__name__}")
    order = root.topological_order()
    pos = _graph_layout(order)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax = ax or plt.subplots(figsize=(1.9 * (max(xs) + 1), 0.95 * (max(ys) - min(ys) + 1.6)))[1]
    for node in order:
        for parent in node.parents:
            ax.annotate(
                "",
                xy=pos[id(node)],
                xytext=pos[id(parent)],
                arrowprops={"arrowstyle": "-|>", "color": "0.55", "shrinkA": 26, "shrinkB": 26},
            )
    for node in order:
        x, y = pos[id(node)]
        name = node.label or ""
        if node.op:
            name = f"{name} ({node.op})" if name else node.op
        text = f"{name}\n{node.data:.{precision}f}\ngrad {node.grad:.{precision}f}"
        colour = PALETTE["sky"] if not node.parents else PALETTE["orange"]
        ax.text(
            x, y, text, ha="center", va="center", fontsize=8,
            bbox={"boxstyle": "round,pad=0.35", "facecolor": colour, "alpha": 0.35,
                  "edgecolor": "0.4"},
        )  # fmt: skip
    ax.set_xlim(min(xs) - 0.55, max(xs) + 0.55)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    return ax


# ---------------------------------------------------------------------------------------------
# Gradient fields (chapter 1.2)


def plot_gradient_field(
    f,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int = 15,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Contours of ``f(x, y)`` and arrows of :math:`-\\nabla f` on an ``n x n`` grid.

    ``f`` takes two tensors of the same shape and returns a tensor of that shape (element-wise,
    e.g. ``lambda x, y: x**2 + 4 * y**2``); the gradient comes from ``torch.autograd`` in
    float64. Axes are equal, so an arrow that looks perpendicular to a contour is. Arrows are
    drawn to scale in data units (the longest is 0.95 grid cells); the ``Quiver`` is
    ``ax.collections[-1]``, its ``X, Y, U, V`` the base points and the arrows.
    """
    if not callable(f):
        raise TypeError(f"f must be callable as f(x, y), got {type(f).__name__}")
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        if len(lim) != 2 or not float(lim[0]) < float(lim[1]):
            raise ValueError(f"{name} must be (low, high) with low < high, got {lim!r}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")

    def evaluate(nx: int) -> tuple[torch.Tensor, ...]:
        xs = torch.linspace(float(xlim[0]), float(xlim[1]), nx, dtype=torch.float64)
        ys = torch.linspace(float(ylim[0]), float(ylim[1]), nx, dtype=torch.float64)
        X, Y = (g.clone().requires_grad_() for g in torch.meshgrid(xs, ys, indexing="xy"))
        Z = f(X, Y)
        if not torch.is_tensor(Z) or Z.shape != X.shape:
            raise ValueError(f"f(x, y) must return a tensor shaped like x {tuple(X.shape)}")
        gx, gy = torch.autograd.grad(Z.sum(), (X, Y), allow_unused=True)
        gx = torch.zeros_like(X) if gx is None else gx
        gy = torch.zeros_like(Y) if gy is None else gy
        return X.detach(), Y.detach(), Z.detach(), gx, gy

    width, height = float(xlim[1]) - float(xlim[0]), float(ylim[1]) - float(ylim[0])
    ax = ax or plt.subplots(figsize=(5.5, min(8.0, 0.6 + 5.0 * height / width)))[1]
    X, Y, Z, _, _ = evaluate(120)
    ax.contour(X.numpy(), Y.numpy(), Z.numpy(), levels=12, cmap=SEQUENTIAL_CMAP, linewidths=1)
    X, Y, _, gx, gy = evaluate(n)
    length = torch.sqrt(gx**2 + gy**2).max().item()
    cell = min(width, height) / (n - 1)
    ax.quiver(
        X.numpy(), Y.numpy(), -gx.numpy(), -gy.numpy(), color=PALETTE["vermillion"],
        angles="xy", scale_units="xy", scale=max(length, 1e-12) / (0.95 * cell), width=0.005,
    )  # fmt: skip
    ax.set_aspect("equal")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return ax


# =============================================================================================
# Chapter 1.6: per-layer statistics (activation std, gradient norms) of several models


def plot_layer_stats(
    stats: Mapping[str, Sequence[float]],
    logy: bool = True,
    ylabel: str = "",
    *,
    ax: plt.Axes | None = None,
    xlabel: str = "layer",
    title: str | None = None,
) -> plt.Axes:
    """One curve with markers per model: a statistic (activation std, gradient norm, ...)
    against the layer index 1, 2, ..., on a log scale by default."""
    from matplotlib.ticker import MaxNLocator

    if not stats:
        raise ValueError("stats must map at least one model name to per-layer values")
    for name, values in stats.items():
        if np.ndim(values) != 1 or len(values) == 0:
            raise ValueError(f"stats[{name!r}] must be a non-empty sequence of numbers")
    depth = max(len(values) for values in stats.values())
    ax = curves(stats, np.arange(1, depth + 1), ax=ax, xlabel=xlabel, ylabel=ylabel, logy=logy,
                title=title)  # fmt: skip
    for line in ax.lines[-len(stats) :]:
        line.set(marker="o", markersize=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


# Functions with their derivatives, decision boundaries (chapter 1.4)


def plot_functions(
    fns: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    x: torch.Tensor,
    derivatives: bool = True,
    ncols: int = 4,
) -> plt.Figure:
    """One small panel per named elementwise function, drawn on the 1-D grid ``x: (n,)``.

    With ``derivatives`` each panel also shows the derivative computed by autograd (dashed),
    so a hand-written function is differentiated exactly as a network would differentiate it.
    """
    if not fns:
        raise ValueError("fns must contain at least one named function")
    x = torch.as_tensor(x).detach()
    if x.ndim != 1 or not x.is_floating_point():
        raise ValueError(f"x must be a 1-D floating-point grid, got shape {tuple(x.shape)}")
    ncols = min(ncols, len(fns))
    nrows = -(-len(fns) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.4 * ncols, 2.0 * nrows), sharex=True, squeeze=False
    )
    for ax, (name, fn) in zip(axes.flat, fns.items(), strict=False):  # spare panels stay empty
        xg = x.clone().requires_grad_(derivatives)
        y = fn(xg)
        if y.shape != x.shape:
            raise ValueError(f"fns[{name!r}] must be elementwise: got shape {tuple(y.shape)}")
        xs = x.cpu().numpy()
        ax.plot(xs, y.detach().cpu().numpy(), color=PALETTE["blue"], label="f(x)")
        if derivatives:
            (grad,) = torch.autograd.grad(y.sum(), xg)
            ax.plot(xs, grad.cpu().numpy(), "--", color=PALETTE["vermillion"], label="f'(x)")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(name)
    for ax in list(axes.flat)[len(fns) :]:
        ax.axis("off")
    if derivatives:
        axes.flat[0].legend(loc="upper left")
    return fig


def plot_decision_boundary(
    predict: Callable[[torch.Tensor], torch.Tensor] | torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    ax: plt.Axes | None = None,
    grid: int = 200,
) -> plt.Axes:
    """Colour the plane by the predicted class and overlay the labelled points ``X: (N, 2)``.

    ``predict`` maps ``(G, 2)`` float32 points to class scores ``(G, C)`` (arg-max), to one
    score per point ``(G,)`` or ``(G, 1)`` (class 1 where it is > 0), or to integer labels. A
    module is evaluated in eval mode, without gradients, on its own device.
    """
    X, y = torch.as_tensor(X).detach().cpu(), torch.as_tensor(y).detach().cpu()
    if X.ndim != 2 or X.shape[1] != 2 or y.shape != X.shape[:1]:
        raise ValueError(f"X must be (N, 2) and y (N,); got {tuple(X.shape)}, {tuple(y.shape)}")
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    pad = 0.1 * (X.max(0).values - X.min(0).values)
    lo, hi = X.min(0).values - pad, X.max(0).values + pad
    gx, gy = torch.meshgrid(
        torch.linspace(lo[0], hi[0], grid), torch.linspace(lo[1], hi[1], grid), indexing="xy"
    )
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    was_training = None
    if isinstance(predict, torch.nn.Module):
        was_training = predict.training
        predict.eval()
        param = next(predict.parameters(), None)
        if param is not None:
            points = points.to(param.device)
    with torch.no_grad():
        out = torch.as_tensor(predict(points)).detach().cpu()
    if was_training is not None:
        predict.train(was_training)
    if out.is_floating_point():
        out = out.argmax(1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0)
    labels = out.reshape(grid, grid).long().numpy()
    n_classes = int(max(labels.max(), y.max().item())) + 1
    colours = [_CYCLE[k % len(_CYCLE)] for k in range(n_classes)]
    cmap = mpl.colors.ListedColormap(colours)
    ax.contourf(gx.numpy(), gy.numpy(), labels, levels=np.arange(n_classes + 1) - 0.5,
                cmap=cmap, alpha=0.25)  # fmt: skip
    ax.scatter(X[:, 0], X[:, 1], c=y.numpy(), cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5,
               s=8, linewidths=0)  # fmt: skip
    ax.set_aspect("equal")
    ax.grid(False)
    return ax


# Optimizer paths on 2-D loss surfaces (chapters 2.1-2.3)


def plot_contour_paths(
    f,
    paths: Mapping[str, torch.Tensor | np.ndarray],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    levels: int | Sequence[float] = 30,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Contours of a 2-D function with optimizer paths drawn on top.

    ``f`` maps a tensor ``(..., 2)`` to ``(...)`` (e.g. ``dlcourse.optim.rosenbrock``);
    ``paths``: name -> ``(T, 2)`` points, drawn as lines with dots, the start circled. An int
    ``levels`` places that many contours at quantiles of ``f`` over the window (so steep and flat
    regions both get lines); a sequence gives the levels themselves. Points outside the window
    (a diverging run) are simply cut off.
    """
    if len(xlim) != 2 or len(ylim) != 2 or xlim[0] >= xlim[1] or ylim[0] >= ylim[1]:
        raise ValueError(f"xlim and ylim must be increasing pairs, got {xlim} and {ylim}")
    ax = ax or plt.subplots(figsize=(5, 3.6))[1]
    xs = torch.linspace(xlim[0], xlim[1], 200, dtype=torch.float64)
    ys = torch.linspace(ylim[0], ylim[1], 200, dtype=torch.float64)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        z = f(torch.stack([grid_x, grid_y], dim=-1)).double().cpu().numpy()
    if isinstance(levels, int):
        if levels < 1:
            raise ValueError(f"levels must be a positive int or a sequence, got {levels}")
        finite = z[np.isfinite(z)]
        levels = np.unique(np.quantile(finite, np.linspace(0, 1, levels + 2)[1:-1]))
    ax.contour(grid_x.numpy(), grid_y.numpy(), z, levels=levels, colors="0.6", linewidths=0.6)
    for name, path in paths.items():
        points = np.asarray(torch.as_tensor(path).detach().cpu().double())
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"path {name!r} must be (T, 2), got {points.shape}")
        (line,) = ax.plot(points[:, 0], points[:, 1], ".-", markersize=4, linewidth=1.2,
                          label=name)  # fmt: skip
        ax.plot(points[0, 0], points[0, 1], "o", markersize=7, fillstyle="none",
                color=line.get_color())  # fmt: skip
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if len(paths) > 1:
        ax.legend(loc="best")
    return ax


# Loss surfaces of two parameters (chapter 2.2)


def plot_surface(
    f,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    kind: str = "contour",
    ax: plt.Axes | None = None,
    *,
    n: int = 121,
    levels: int | Sequence[float] = 25,
    cmap: str = SEQUENTIAL_CMAP,
) -> plt.Axes:
    """Draw ``z = f(X, Y)`` over ``xlim x ylim`` as contour lines or as a 3-D surface.

    ``f`` takes two float64 tensors ``X, Y: (n, n)`` (a grid, ``indexing="xy"``) and returns
    ``Z: (n, n)``, so write it with tensor operations (``X**2 - Y**2``). ``kind`` is
    ``"contour"`` (filled background plus labelled lines) or ``"3d"`` (a surface; ``ax``, when
    given, must have ``projection="3d"``). Returns the axes, for paths drawn on top.
    """
    if kind not in ("contour", "3d"):
        raise ValueError(f"kind must be 'contour' or '3d', got {kind!r}")
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        if len(lim) != 2 or not lim[0] < lim[1]:
            raise ValueError(f"{name} must be (low, high) with low < high, got {lim!r}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    xs = torch.linspace(float(xlim[0]), float(xlim[1]), n, dtype=torch.float64)
    ys = torch.linspace(float(ylim[0]), float(ylim[1]), n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    Z = torch.as_tensor(f(X, Y))
    if Z.shape != X.shape:
        raise ValueError(f"f(X, Y) must return an ({n}, {n}) grid, got {tuple(Z.shape)}")
    X, Y, Z = (np.asarray(t.detach().cpu(), dtype=float) for t in (X, Y, Z))
    if kind == "3d":
        if ax is None:
            ax = plt.figure(figsize=(4.6, 3.8)).add_subplot(projection="3d")
        elif getattr(ax, "name", "") != "3d":
            raise ValueError("ax must be a 3-D axes (projection='3d') when kind='3d'")
        ax.plot_surface(X, Y, Z, cmap=cmap, linewidth=0, antialiased=True, alpha=0.9)
        ax.set_zlabel("z")
    else:
        ax = ax or plt.subplots(figsize=(4.2, 3.6))[1]
        ax.contourf(X, Y, Z, levels=levels, cmap=cmap, alpha=0.55)
        lines = ax.contour(X, Y, Z, levels=levels, colors="0.35", linewidths=0.6)
        ax.clabel(lines, lines.levels[::4], fontsize=7, fmt="%.2g")
        ax.set_aspect("equal", adjustable="box")
        ax.grid(False)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return ax


# ---------------------------------------------------------------------------------------------
# Chapter 2.5 (generalization): training and validation error against a capacity knob


def plot_train_val_curves(
    x: Sequence[float],
    train: Sequence[float],
    val: Sequence[float],
    xlabel: str,
    logy: bool = False,
    *,
    ax: plt.Axes | None = None,
    ylabel: str = "error",
) -> plt.Axes:
    """Training and validation error against ``x`` (degree, width, epoch, ...), with the
    validation minimum marked: the model a validation set would select."""
    x = np.asarray(x, dtype=float)
    train = np.asarray(train, dtype=float)
    val = np.asarray(val, dtype=float)
    if x.ndim != 1 or train.shape != x.shape or val.shape != x.shape:
        raise ValueError(
            f"x, train and val must be 1-D of the same length; got shapes {x.shape}, "
            f"{train.shape} and {val.shape}"
        )
    ax = ax or plt.subplots()[1]
    ax.plot(x, train, marker="o", markersize=4, label="training", color=PALETTE["blue"])
    ax.plot(x, val, marker="s", markersize=4, label="validation", color=PALETTE["orange"])
    best = int(np.nanargmin(val))
    ax.axvline(x[best], color=PALETTE["black"], linestyle=":", linewidth=1.0)
    ax.annotate(
        f"selected: {x[best]:g}", (x[best], 1.0), xycoords=("data", "axes fraction"),
        textcoords="offset points", xytext=(4, -12), fontsize=9,
    )  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return ax


# Matrices (chapter 1.1): heat maps and 2x2 matrices as maps of the plane


def heatmap(
    M: torch.Tensor | np.ndarray,
    xlabels: Sequence | None = None,
    ylabels: Sequence | None = None,
    annotate: bool = False,
    ax: plt.Axes | None = None,
    *,
    cmap: str | None = None,
    fmt: str = ".2g",
    title: str | None = None,
    colorbar: bool = True,
) -> plt.Axes:
    """Heat map of a matrix ``M: (rows, cols)``, row 0 at the top (as the matrix is printed).

    A matrix with negative entries (a covariance, a weight matrix) gets the diverging colour
    map centred on 0, so that the sign reads as a hue; a non-negative one (counts,
    probabilities) the sequential map from its minimum to its maximum. ``annotate=True``
    writes each entry with the format ``fmt`` (for small matrices).
    """
    m = np.asarray(torch.as_tensor(M).detach().cpu(), dtype=float)
    if m.ndim != 2:
        raise ValueError(f"M must be a matrix (rows, cols), got shape {m.shape}")
    for labels, size, name in ((xlabels, m.shape[1], "xlabels"), (ylabels, m.shape[0], "ylabels")):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name} must have {size} entries for M of shape {m.shape}")
    ax = ax or plt.subplots(figsize=(0.5 + min(6.0, 0.45 * m.shape[1] + 1.2), 3.4))[1]
    finite = m[np.isfinite(m)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    if cmap is None and low < 0:
        bound = max(abs(low), abs(high), 1e-12)
        image = ax.imshow(m, cmap=DIVERGING_CMAP, vmin=-bound, vmax=bound)
    else:
        image = ax.imshow(m, cmap=cmap or SEQUENTIAL_CMAP, vmin=low, vmax=max(high, low + 1e-12))
    ax.grid(False)
    for axis, size in ((ax.xaxis, m.shape[1]), (ax.yaxis, m.shape[0])):  # integer indices
        if size <= 12:
            axis.set_ticks(range(size))
        else:
            axis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    if xlabels is not None:
        ax.set_xticks(range(m.shape[1]), [str(v) for v in xlabels])
    if ylabels is not None:
        ax.set_yticks(range(m.shape[0]), [str(v) for v in ylabels])
    if annotate:
        for (i, j), value in np.ndenumerate(m):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")  # fmt: skip
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax


def plot_linear_map(
    A: torch.Tensor | np.ndarray,
    ax: plt.Axes | None = None,
    *,
    grid_lines: int = 5,
    title: str | None = None,
) -> plt.Axes:
    """Draw what the 2x2 matrix ``A`` does to the plane, ``x -> A x``.

    Grey: the square grid on [-1, 1]^2, the unit circle and the basis vectors e1, e2. Blue: the
    image of the grid, with A e1 and A e2 (the columns of A) as arrows. Orange: the image of
    the unit circle, an ellipse whose axes (vermillion) run along the left singular vectors
    u_i with half-lengths sigma_i, from the SVD A = U diag(sigma) V^T; the longest half-axis
    is sigma_max = ||A||_2.
    """
    a = torch.as_tensor(A).detach().cpu().double()
    if a.shape != (2, 2):
        raise ValueError(f"A must be a 2x2 matrix, got shape {tuple(a.shape)}")
    if grid_lines < 2:
        raise ValueError(f"grid_lines must be >= 2, got {grid_lines}")
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    t = torch.linspace(-1, 1, 101, dtype=torch.float64)
    for c in torch.linspace(-1, 1, grid_lines, dtype=torch.float64):
        for line in (
            torch.stack([torch.full_like(t, c), t]),
            torch.stack([t, torch.full_like(t, c)]),
        ):
            ax.plot(*line.numpy(), color="0.8", linewidth=0.8)
            ax.plot(*(a @ line).numpy(), color=PALETTE["blue"], linewidth=0.8, alpha=0.6)
    angle = torch.linspace(0, 2 * math.pi, 361, dtype=torch.float64)
    circle = torch.stack([angle.cos(), angle.sin()])
    ellipse = a @ circle
    ax.plot(*circle.numpy(), color="0.5", linestyle="--", linewidth=1.2, label="unit circle")
    ax.plot(*ellipse.numpy(), color=PALETTE["orange"], linewidth=2, label="its image")

    lim = 1.2 * max(1.0, float(ellipse.abs().max()), float(a.abs().sum(0).max()))

    def arrow(end: torch.Tensor, colour: str, text: str) -> None:
        ax.annotate("", xy=tuple(end.tolist()), xytext=(0, 0),
                    arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.6})  # fmt: skip
        norm = float(end.norm())
        if norm > 1e-9:
            where = end * (1 + 0.09 * lim / norm)
            ax.text(*where.tolist(), text, color=colour, fontsize=9, ha="center", va="center")

    u, s, _ = torch.linalg.svd(a)
    for i in range(2):
        if s[i] > 1e-9 * max(float(s[0]), 1e-300):
            half = s[i] * u[:, i]
            axis = torch.stack([-half, half], dim=1)
            ax.plot(*axis.numpy(), color=PALETTE["vermillion"], linewidth=1.4)
            label = (0.55 * half + 0.06 * lim * torch.stack([-u[1, i], u[0, i]])).tolist()
            ax.text(*label, f"σ{i + 1}={float(s[i]):.2f}", color=PALETTE["vermillion"],
                    fontsize=8, ha="center", va="center")  # fmt: skip
    basis = torch.eye(2, dtype=torch.float64)
    for i, name in enumerate(("e1", "e2")):
        arrow(basis[:, i], "0.45", name)
        arrow(a[:, i], PALETTE["blue"], f"A{name}")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules (chapter 2.4)


def plot_schedules(
    schedules: Mapping[str, Callable[[int], float]],
    T: int,
    logy: bool = False,
    *,
    ax: plt.Axes | None = None,
    xlabel: str = "step t",
) -> plt.Axes:
    """Draw each named schedule ``t -> learning rate`` for ``t = 0, ..., T - 1`` as a step plot.

    A schedule holds its value for a whole step, so the curves are drawn as steps; ``logy``
    puts the rate on a log scale (exponential decay becomes a straight line).
    """
    if not schedules:
        raise ValueError("schedules must contain at least one named function")
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    ax = ax or plt.subplots()[1]
    steps = np.arange(T)
    for name, schedule in schedules.items():
        ax.step(steps, [float(schedule(int(t))) for t in steps], where="post", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    if logy:
        ax.set_yscale("log")
    if len(schedules) > 1:
        ax.legend()
    return ax


# ---------------------------------------------------------------------------------------------
# Chapter 2.6 (regularization): the geometry of L1 and L2 penalties


def _l1_penalized_2d(H: np.ndarray, w_star: np.ndarray, lam: float) -> np.ndarray:
    """argmin 0.5 (w - w*)^T H (w - w*) + lam ||w||_1 by proximal gradient (2 coordinates)."""
    eta = 1.0 / np.linalg.eigvalsh(H).max()
    w = w_star.copy()
    for _ in range(2000):
        v = w - eta * H @ (w - w_star)
        w = np.sign(v) * np.maximum(np.abs(v) - eta * lam, 0.0)
    return w


def plot_penalty_geometry(
    H: torch.Tensor, w_star: torch.Tensor, lam: float, ax: plt.Axes | None = None
) -> plt.Axes:
    """Contours of :math:`L(w) = \\frac12 (w-w^*)^\\top H (w-w^*)` with the L1 and L2 balls.

    For the penalty strength ``lam`` the L2 optimum is :math:`(H+\\lambda I)^{-1}Hw^*` and
    the L1 optimum is found by proximal gradient; each is drawn with the ball (diamond or
    circle) of the radius that makes it the constrained optimum, and the loss contour that
    touches that ball. ``H: (2, 2)`` symmetric positive definite, ``w_star: (2,)``.
    """
    H = np.asarray(torch.as_tensor(H, dtype=torch.float64))
    w_star = np.asarray(torch.as_tensor(w_star, dtype=torch.float64))
    if H.shape != (2, 2) or not np.allclose(H, H.T) or np.linalg.eigvalsh(H).min() <= 0:
        raise ValueError(f"H must be a (2, 2) symmetric positive definite matrix, got {H}")
    if w_star.shape != (2,):
        raise ValueError(f"w_star must have shape (2,), got {w_star.shape}")
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    w_l2 = np.linalg.solve(H + lam * np.eye(2), H @ w_star)
    w_l1 = _l1_penalized_2d(H, w_star, lam)
    span = 1.3 * max(np.abs(w_star).max(), 1.0)
    grid = np.linspace(-span, span, 201)
    W1, W2 = np.meshgrid(grid, grid)
    D = np.stack([W1 - w_star[0], W2 - w_star[1]], axis=-1)
    loss = 0.5 * np.einsum("...i,ij,...j->...", D, H, D)
    ax.contour(W1, W2, loss, levels=12, colors="0.6", linewidths=0.7, alpha=0.7)

    def loss_at(w):
        return 0.5 * (w - w_star) @ H @ (w - w_star)

    r1, r2 = np.abs(w_l1).sum(), np.linalg.norm(w_l2)
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(r1 * np.array([1, 0, -1, 0, 1]), r1 * np.array([0, 1, 0, -1, 0]),
            color=PALETTE["orange"], label=f"L1 ball, r = {r1:.2f}")  # fmt: skip
    ax.plot(r2 * np.cos(t), r2 * np.sin(t), color=PALETTE["blue"], label=f"L2 ball, r = {r2:.2f}")
    for w, key in ((w_l1, "orange"), (w_l2, "blue")):
        if loss_at(w) > 0:
            ax.contour(W1, W2, loss, levels=[loss_at(w)], colors=PALETTE[key], linestyles="--")
    ax.plot(*w_star, "k*", markersize=12, label="unpenalized optimum $w^*$")
    ax.plot(*w_l1, "o", color=PALETTE["orange"], label=f"L1 optimum ({w_l1[0]:.2f}, {w_l1[1]:.2f})")
    ax.plot(*w_l2, "s", color=PALETTE["blue"], label=f"L2 optimum ({w_l2[0]:.2f}, {w_l2[1]:.2f})")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.axvline(0, color="k", linewidth=0.5)
    ax.set_aspect("equal")
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"lambda = {lam:g}")
    return ax


# Chapter 3.5: object detection


def draw_boxes(
    ax: plt.Axes,
    boxes: torch.Tensor | np.ndarray,
    labels: Sequence[str] | None = None,
    scores: torch.Tensor | np.ndarray | None = None,
    color: str = PALETTE["vermillion"],
    linewidth: float = 1.5,
    linestyle: str = "-",
) -> None:
    """Draw ``boxes: (N, 4)`` in ``(x1, y1, x2, y2)`` pixel corners on an image axis.

    Pixel ``(i, j)`` of ``ax.imshow`` is centred at ``(j, i)``, so a box of pixel edges is
    shifted by half a pixel. ``labels`` (N strings) and ``scores`` (N numbers) are written above
    the top-left corner.
    """
    from matplotlib.patches import Rectangle

    boxes = torch.as_tensor(boxes, dtype=torch.float32).detach().cpu()
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if labels is not None and len(labels) != len(boxes):
        raise ValueError(f"labels must hold {len(boxes)} strings, one per box")
    if scores is not None and len(scores) != len(boxes):
        raise ValueError(f"scores must hold {len(boxes)} numbers, one per box")
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        ax.add_patch(
            Rectangle(
                (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                linewidth=linewidth, linestyle=linestyle,
            )
        )  # fmt: skip
        text = [labels[k]] if labels is not None else []
        if scores is not None:
            text.append(f"{float(scores[k]):.2f}")
        if text:
            ax.text(x1 - 0.5, y1 - 1.0, " ".join(text), color=color, fontsize=7, va="bottom")


# ---------------------------------------------------------------------------------------------
# Chapter 3.6: segmentation masks


def show_masks(
    images: torch.Tensor | np.ndarray,
    masks: torch.Tensor | np.ndarray,
    preds: torch.Tensor | np.ndarray | None = None,
    n: int = 8,
    *,
    num_classes: int | None = None,
    scale: float = 1.1,
) -> plt.Figure:
    """Images in the first row, their label masks below, predicted masks (if any) in a third.

    ``images: (N, H, W)`` or ``(N, 1 or 3, H, W)``, ``masks`` and ``preds``: integer label maps
    ``(N, H, W)``; the first ``n`` are shown. Labels are drawn with fixed colours from
    ``PALETTE`` (background white), the same in every panel, so a mask and a prediction can be
    compared colour for colour; ``num_classes`` defaults to the largest label + 1.
    """
    images = _as_image_batch(images)
    rows = {"image": images, "mask": masks} if preds is None else {
        "image": images, "mask": masks, "prediction": preds}  # fmt: skip
    for name in ("mask", "prediction"):
        if name in rows:
            t = torch.as_tensor(np.asarray(rows[name]) if not torch.is_tensor(rows[name])
                                else rows[name]).detach().cpu()  # fmt: skip
            if t.ndim != 3 or t.shape[0] != images.shape[0] or t.shape[1:] != images.shape[-2:]:
                raise ValueError(
                    f"{name}s must be (N, H, W) = {(images.shape[0], *images.shape[-2:])}, "
                    f"got {tuple(t.shape)}"
                )
            rows[name] = t.long()
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    top = max(int(rows[k].max()) for k in rows if k != "image")
    num_classes = num_classes or top + 1
    colours = ["white"] + [PALETTE[c] for c in ("blue", "orange", "green", "vermillion", "purple",
                                                "sky", "yellow")]  # fmt: skip
    if num_classes > len(colours):
        raise ValueError(f"num_classes must be at most {len(colours)}, got {num_classes}")
    label_cmap = mpl.colors.ListedColormap(colours[:num_classes])
    count = min(n, images.shape[0])
    fig, axes = plt.subplots(len(rows), count, figsize=(scale * count, scale * len(rows) + 0.2),
                             squeeze=False)  # fmt: skip
    for r, (name, data) in enumerate(rows.items()):
        for i in range(count):
            ax = axes[r, i]
            ax.axis("off")
            if name == "image" and data.ndim == 4:
                ax.imshow(data[i].permute(1, 2, 0).clamp(0, 1).numpy())
            elif name == "image":
                ax.imshow(data[i].numpy(), cmap="gray")
            else:
                ax.imshow(data[i].numpy(), cmap=label_cmap, vmin=-0.5, vmax=num_classes - 0.5,
                          interpolation="nearest")  # fmt: skip
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    return fig
