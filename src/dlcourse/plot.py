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
    "image_grid",
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
# Chapter 2.5 (generalization): training and validation error against a capacity knob

__all__ += ["plot_train_val_curves"]


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
