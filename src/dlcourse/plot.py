"""One look for every figure in the book.

``use_course_style()`` sets sizes, grid and the Okabe-Ito colour cycle (safe for the common
forms of colour blindness); it never changes the matplotlib backend, so figures still reach
the built website. The helpers below draw the few kinds of figure chapters share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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
    "heatmap",
    "image_grid",
    "plot_linear_map",
    "scatter2d",
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
    images = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    images = images.detach().cpu().float()
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got {tuple(images.shape)}")
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
