"""Object detection kernels: boxes, IoU, anchors, NMS, RoI ops, set matching, AP.

Boxes are float tensors of shape ``(N, 4)``. The corner format ``(x1, y1, x2, y2)`` ("xyxy",
with ``x2 >= x1`` and ``y2 >= y1``) is the default everywhere; the centre format
``(cx, cy, w, h)`` ("cxcywh") is converted with :func:`box_xyxy_to_cxcywh` /
:func:`box_cxcywh_to_xyxy`. Pixel ``(i, j)`` of an image covers ``[j, j+1) x [i, i+1)``, so a
box drawn over columns ``c0..c1-1`` is ``x1 = c0, x2 = c1``. Written from the papers (Faster
R-CNN, SSD, RetinaNet, Mask R-CNN, DETR); no torchvision.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "SHAPE_CLASSES",
    "assign_anchors",
    "average_precision",
    "batched_nms",
    "bilinear_interpolate",
    "box_area",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "box_xyxy_to_cxcywh",
    "brute_force_match",
    "decode_boxes",
    "detr_match_cost",
    "encode_boxes",
    "generalized_box_iou",
    "hungarian_match",
    "multibox_prior",
    "nms",
    "random_shapes_detection",
    "roi_align",
    "roi_pool",
]


# ---------------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------------


def _check_boxes(boxes: torch.Tensor, name: str, corners: bool = True) -> None:
    """Raise unless ``boxes`` is a floating tensor ``(N, 4)`` (valid corners if ``corners``)."""
    if not torch.is_tensor(boxes):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, 4), got {type(boxes).__name__}"
        )
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {boxes.dtype}")
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    if corners and ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        raise ValueError(f"{name} has invalid boxes: (x1, y1, x2, y2) needs x2 >= x1 and y2 >= y1")
    if not corners and (boxes[:, 2:] < 0).any():
        raise ValueError(f"{name} has invalid boxes: (cx, cy, w, h) needs w >= 0 and h >= 0")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(x2 - x1)(y2 - y1)`` of ``boxes: (N, 4)`` in xyxy format -> ``(N,)``."""
    _check_boxes(boxes, "boxes")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(x1, y1, x2, y2) -> ((x1+x2)/2, (y1+y2)/2, x2-x1, y2-y1)``; ``boxes: (N, 4)``."""
    _check_boxes(boxes, "boxes")
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h) -> (cx - w/2, cy - h/2, cx + w/2, cy + h/2)``; ``boxes: (N, 4)``."""
    _check_boxes(boxes, "boxes", corners=False)
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise intersection and union areas of ``a: (N, 4)`` and ``b: (M, 4)`` -> ``(N, M)``."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter, union


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair: ``IoU(A, B) = |A n B| / |A u B|``.

    ``a: (N, 4)``, ``b: (M, 4)`` in xyxy -> ``(N, M)``. Two empty (zero-area) boxes have union
    0; their IoU is defined as 0.
    """
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    inter, union = _inter_union(a, b)
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(a.dtype).tiny), 0.0)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU (Rezatofighi et al., 2019): ``IoU - |C minus (A u B)| / |C|``, C the enclosing box.

    ``a: (N, 4)``, ``b: (M, 4)`` in xyxy -> ``(N, M)`` in ``[-1, 1]``. Unlike IoU it keeps
    decreasing as disjoint boxes move apart, so it gives a signal where IoU is flat at 0.
    """
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    inter, union = _inter_union(a, b)
    tiny = torch.finfo(a.dtype).tiny
    iou = torch.where(union > 0, inter / union.clamp(min=tiny), 0.0)
    enclose_tl = torch.minimum(a[:, None, :2], b[None, :, :2])
    enclose_br = torch.maximum(a[:, None, 2:], b[None, :, 2:])
    enclose = (enclose_br - enclose_tl).prod(-1)
    penalty = torch.where(enclose > 0, (enclose - union) / enclose.clamp(min=tiny), 0.0)
    return iou - penalty


# ---------------------------------------------------------------------------------------------
# Anchors, labelling and offsets
# ---------------------------------------------------------------------------------------------


def multibox_prior(
    feat_hw: tuple[int, int], sizes: Sequence[float], ratios: Sequence[float]
) -> torch.Tensor:
    """Anchor boxes centred on every cell of an ``h x w`` map, normalised to ``[0, 1]`` (xyxy).

    With sizes ``s_1..s_n`` and ratios ``r_1..r_m`` each position gets the ``n + m - 1`` pairs
    ``(s_i, r_1)`` and ``(s_1, r_j)``, of width ``s sqrt(r)`` and height ``s / sqrt(r)`` in units
    of the image width and height (an anchor of ``W x H`` pixels is ``W s sqrt(r)`` by
    ``H s / sqrt(r)`` pixels). Centres sit at ``((j + 0.5)/w, (i + 0.5)/h)``. Returns
    ``(1, h * w * (n + m - 1), 4)``, position-major: the anchors of cell ``(i, j)`` are
    consecutive, in the order ``(s_1, r_1), ..., (s_n, r_1), (s_1, r_2), ..., (s_1, r_m)``.
    """
    if len(feat_hw) != 2 or any(int(v) != v or v < 1 for v in feat_hw):
        raise ValueError(f"feat_hw must be two positive ints (h, w), got {feat_hw!r}")
    if len(sizes) == 0 or any(s <= 0 for s in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of positive floats, got {sizes!r}")
    if len(ratios) == 0 or any(r <= 0 for r in ratios):
        raise ValueError(f"ratios must be a non-empty sequence of positive floats, got {ratios!r}")
    h, w = int(feat_hw[0]), int(feat_hw[1])
    pairs = [(s, ratios[0]) for s in sizes] + [(sizes[0], r) for r in ratios[1:]]
    size = torch.tensor([s for s, _ in pairs], dtype=torch.float32)
    ratio = torch.tensor([r for _, r in pairs], dtype=torch.float32)
    half_wh = torch.stack([size * ratio.sqrt(), size / ratio.sqrt()], dim=-1) / 2  # (k, 2)
    cy, cx = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)  # (hw, 1, 2)
    anchors = torch.cat([centres - half_wh, centres + half_wh], dim=-1)  # (hw, k, 4)
    return anchors.reshape(1, -1, 4)


def assign_anchors(
    gt: torch.Tensor, anchors: torch.Tensor, iou_threshold: float = 0.5
) -> torch.Tensor:
    """Index of the ground-truth box each anchor must predict, ``-1`` for background.

    ``gt: (G, 4)``, ``anchors: (A, 4)``, both xyxy in the same units -> ``LongTensor (A,)``.
    Two steps on the IoU matrix ``X = IoU(anchors, gt)``: (1) greedy: ``G`` times, take the
    largest entry of ``X``, assign that anchor to that box and discard its row and column, so
    every ground-truth box gets at least one anchor (ties go to the lowest flat index); (2)
    threshold: every other anchor takes its best box if that IoU is ``>= iou_threshold``.
    """
    _check_boxes(gt, "gt")
    _check_boxes(anchors, "anchors")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must lie in [0, 1], got {iou_threshold}")
    num_anchors, num_gt = anchors.shape[0], gt.shape[0]
    assigned = torch.full((num_anchors,), -1, dtype=torch.long, device=anchors.device)
    if num_gt == 0 or num_anchors == 0:
        return assigned
    iou = box_iou(anchors, gt)
    best_iou, best_gt = iou.max(dim=1)
    keep = best_iou >= iou_threshold
    assigned[keep] = best_gt[keep]
    free = iou.clone()
    for _ in range(min(num_gt, num_anchors)):
        flat = int(free.argmax())
        anchor, box = divmod(flat, num_gt)
        assigned[anchor] = box
        free[anchor, :] = -1.0
        free[:, box] = -1.0
    return assigned


def _check_stds(stds: Sequence[float]) -> torch.Tensor:
    if len(stds) != 4 or any(s <= 0 for s in stds):
        raise ValueError(f"stds must be four positive floats, got {stds!r}")
    return torch.tensor(stds, dtype=torch.float32)


def encode_boxes(
    anchors: torch.Tensor, gt: torch.Tensor, stds: Sequence[float] = (0.1, 0.1, 0.2, 0.2)
) -> torch.Tensor:
    """Offsets a detector regresses: ground truth ``gt`` relative to its anchor, row by row.

    With centres/sizes ``(x_a, y_a, w_a, h_a)`` and ``(x_b, y_b, w_b, h_b)``:
    ``((x_b - x_a)/w_a / s_x, (y_b - y_a)/h_a / s_y, log(w_b/w_a) / s_w, log(h_b/h_a) / s_h)``
    (the means are 0). ``anchors, gt: (A, 4)`` xyxy with positive widths and heights -> ``(A, 4)``.
    """
    _check_boxes(anchors, "anchors")
    _check_boxes(gt, "gt")
    if anchors.shape != gt.shape:
        raise ValueError(
            f"gt must have the shape of anchors {tuple(anchors.shape)}, got {tuple(gt.shape)}"
        )
    std = _check_stds(stds).to(anchors)
    a, b = box_xyxy_to_cxcywh(anchors), box_xyxy_to_cxcywh(gt)
    if (a[:, 2:] <= 0).any() or (b[:, 2:] <= 0).any():
        raise ValueError("anchors and gt need positive widths and heights to take log(w_b/w_a)")
    centre = (b[:, :2] - a[:, :2]) / a[:, 2:]
    scale = torch.log(b[:, 2:] / a[:, 2:])
    return torch.cat([centre, scale], dim=-1) / std


def decode_boxes(
    anchors: torch.Tensor, deltas: torch.Tensor, stds: Sequence[float] = (0.1, 0.1, 0.2, 0.2)
) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`: apply the offsets ``deltas: (A, 4)`` to ``anchors: (A, 4)``.

    ``x_b = x_a + s_x d_x w_a``, ``w_b = w_a exp(s_w d_w)`` (same for y, h) -> xyxy ``(A, 4)``.
    """
    _check_boxes(anchors, "anchors")
    if not torch.is_tensor(deltas) or deltas.shape != anchors.shape:
        raise ValueError(
            f"deltas must have the shape of anchors {tuple(anchors.shape)}, "
            f"got {tuple(getattr(deltas, 'shape', ()))}"
        )
    d = deltas * _check_stds(stds).to(deltas)
    a = box_xyxy_to_cxcywh(anchors)
    centre = a[:, :2] + d[:, :2] * a[:, 2:]
    size = a[:, 2:] * torch.exp(d[:, 2:].clamp(max=math.log(1000.0)))
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


# ---------------------------------------------------------------------------------------------
# Non-maximum suppression
# ---------------------------------------------------------------------------------------------


def _check_scores(scores: torch.Tensor, boxes: torch.Tensor, name: str = "scores") -> None:
    if not torch.is_tensor(scores) or scores.shape != boxes.shape[:1]:
        raise ValueError(
            f"{name} must be a tensor of shape ({boxes.shape[0]},), one per box, "
            f"got {tuple(getattr(scores, 'shape', ()))}"
        )


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of the kept boxes, highest score first.

    Repeat: keep the highest-scoring remaining box, drop every remaining box whose IoU with it
    is ``> iou_threshold`` (a box at exactly the threshold survives). Tie rule: equal scores are
    visited in index order (a stable sort), so of two identical boxes with equal scores the one
    with the lower index is kept. ``boxes: (N, 4)`` xyxy, ``scores: (N,)`` -> ``LongTensor (K,)``.
    """
    _check_boxes(boxes, "boxes")
    _check_scores(scores, boxes)
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must lie in [0, 1], got {iou_threshold}")
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    alive = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    kept = []
    for i in range(len(order)):
        if alive[i]:
            kept.append(i)
            alive &= iou[i] <= iou_threshold
    return order[torch.tensor(kept, dtype=torch.long, device=boxes.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Class-wise NMS: boxes of different ``labels: (N,)`` never suppress each other.

    Shifts each class's boxes by ``label * (max coordinate + 1)`` so that boxes of two classes
    cannot overlap, then runs one :func:`nms`. Same result as NMS per class, merged by score.
    """
    _check_boxes(boxes, "boxes")
    _check_scores(labels, boxes, "labels")
    if labels.is_floating_point():
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = boxes.max() - boxes.min() + 1
    shifted = boxes + (labels.to(boxes) * offset)[:, None]
    return nms(shifted, scores, iou_threshold)


# ---------------------------------------------------------------------------------------------
# RoI Pooling and RoI Align
# ---------------------------------------------------------------------------------------------


def _bilinear(
    feat: torch.Tensor, batch: torch.Tensor, y: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """Bilinear samples of ``feat: (N, C, H, W)`` at points ``(batch, y, x): (P,)`` -> ``(P, C)``.

    Pixel centres sit at integer coordinates. Points within one pixel outside the map are
    clamped to its border; points farther out give 0 (the RoI Align convention).
    """
    height, width = feat.shape[-2:]
    outside = (y < -1) | (y > height) | (x < -1) | (x > width)
    y = y.clamp(0, height - 1)
    x = x.clamp(0, width - 1)
    y0 = y.floor().long().clamp(max=height - 1)
    x0 = x.floor().long().clamp(max=width - 1)
    y1 = (y0 + 1).clamp(max=height - 1)
    x1 = (x0 + 1).clamp(max=width - 1)
    ly, lx = (y - y0)[:, None], (x - x0)[:, None]
    value = (
        feat[batch, :, y0, x0] * (1 - ly) * (1 - lx)
        + feat[batch, :, y0, x1] * (1 - ly) * lx
        + feat[batch, :, y1, x0] * ly * (1 - lx)
        + feat[batch, :, y1, x1] * ly * lx
    )
    return value.masked_fill(outside[:, None], 0.0)


def bilinear_interpolate(feat: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sample ``feat: (C, H, W)`` at real coordinates ``(y, x)`` (any equal shapes, P points).

    ``f(y, x) = sum over the 4 neighbours of f(y_k, x_k) (1 - |y - y_k|)(1 - |x - x_k|)``, pixel
    centres at integers; equals ``F.grid_sample(..., align_corners=True,
    padding_mode="border")`` for points in ``[-1, H] x [-1, W]``, 0 beyond. Returns ``(C, P)``.
    """
    if not torch.is_tensor(feat) or feat.ndim != 3 or not feat.is_floating_point():
        raise ValueError(
            f"feat must be a floating tensor of shape (C, H, W), got {getattr(feat, 'shape', feat)}"
        )
    if not torch.is_tensor(y) or not torch.is_tensor(x) or y.shape != x.shape:
        raise ValueError("y and x must be tensors of the same shape")
    y, x = y.reshape(-1).to(feat), x.reshape(-1).to(feat)
    batch = torch.zeros(y.shape, dtype=torch.long, device=feat.device)
    return _bilinear(feat[None], batch, y, x).T


def _check_rois(feat: torch.Tensor, rois: torch.Tensor, output_size) -> tuple[int, int]:
    if not torch.is_tensor(feat) or feat.ndim != 4 or not feat.is_floating_point():
        raise ValueError(
            f"feat must be a floating tensor of shape (N, C, H, W), "
            f"got {getattr(feat, 'shape', feat)}"
        )
    if not torch.is_tensor(rois) or rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(
            f"rois must have shape (K, 5) rows (batch_index, x1, y1, x2, y2), "
            f"got {tuple(getattr(rois, 'shape', ()))}"
        )
    _check_boxes(rois[:, 1:].to(feat.dtype), "rois[:, 1:]")
    batch = rois[:, 0]
    if ((batch != batch.round()) | (batch < 0) | (batch >= feat.shape[0])).any():
        raise ValueError(f"rois[:, 0] must hold batch indices in [0, {feat.shape[0]})")
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    ph, pw = (int(v) for v in output_size)
    if ph < 1 or pw < 1:
        raise ValueError(f"output_size must be positive, got {output_size!r}")
    return ph, pw


def roi_pool(
    feat: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> torch.Tensor:
    """RoI Pooling (Fast R-CNN): max over integer bins of a quantised RoI.

    Two quantisations: the RoI corners ``x * spatial_scale`` are rounded to whole feature cells
    (the RoI spans cells ``round(x1)..round(x2)`` inclusive), then bin ``k`` of ``p`` covers
    cells ``floor(k L / p)..ceil((k + 1) L / p) - 1`` of the RoI's ``L`` cells. Each bin keeps
    its maximum (0 if empty). ``feat: (N, C, H, W)``, ``rois: (K, 5)`` rows
    ``(batch_index, x1, y1, x2, y2)`` in image coordinates -> ``(K, C, ph, pw)``.
    """
    ph, pw = _check_rois(feat, rois, output_size)
    height, width = feat.shape[-2:]
    corners = torch.round(rois[:, 1:].to(feat) * spatial_scale)
    x1, y1, x2, y2 = corners.unbind(-1)

    def bin_masks(start: torch.Tensor, end: torch.Tensor, bins: int, size: int) -> torch.Tensor:
        length = (end - start + 1).clamp(min=1)[:, None]  # (K, 1)
        k = torch.arange(bins, device=feat.device).to(feat)[None, :]
        lo = (torch.floor(k * length / bins) + start[:, None]).clamp(0, size)
        hi = (torch.ceil((k + 1) * length / bins) + start[:, None]).clamp(0, size)
        cells = torch.arange(size, device=feat.device).to(feat)
        return (cells >= lo[..., None]) & (cells < hi[..., None])  # (K, bins, size)

    rows = bin_masks(y1, y2, ph, height)  # (K, ph, H)
    cols = bin_masks(x1, x2, pw, width)  # (K, pw, W)
    x = feat[rois[:, 0].long()]  # (K, C, H, W)
    neg_inf = torch.finfo(feat.dtype).min
    by_row = x[:, :, None].masked_fill(~rows[:, None, :, :, None], neg_inf).amax(dim=3)
    out = by_row[:, :, :, None].masked_fill(~cols[:, None, None], neg_inf).amax(dim=-1)
    return out.masked_fill(out == neg_inf, 0.0)


def roi_align(
    feat: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> torch.Tensor:
    """RoI Align (Mask R-CNN): average of bilinear samples on real-valued bins, no rounding.

    The RoI ``x * spatial_scale`` (minus half a cell when ``aligned``, so that pixel centres sit
    at integers) is cut into ``ph x pw`` equal bins; each bin averages ``sampling_ratio^2``
    bilinear samples at the centres of a regular sub-grid. ``aligned=False`` is the original
    Mask R-CNN convention (no half-cell shift, RoI at least 1 x 1). Shapes as :func:`roi_pool`.
    """
    ph, pw = _check_rois(feat, rois, output_size)
    if not isinstance(sampling_ratio, int) or sampling_ratio < 1:
        raise ValueError(f"sampling_ratio must be a positive int, got {sampling_ratio!r}")
    sr, num_rois = sampling_ratio, rois.shape[0]
    box = rois[:, 1:].to(feat) * spatial_scale - (0.5 if aligned else 0.0)
    x1, y1 = box[:, 0], box[:, 1]
    roi_w, roi_h = box[:, 2] - x1, box[:, 3] - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    frac = (torch.arange(sr, device=feat.device).to(feat) + 0.5) / sr  # sub-grid in a bin
    ys = (torch.arange(ph, device=feat.device).to(feat)[:, None] + frac).reshape(-1)  # (ph*sr,)
    xs = (torch.arange(pw, device=feat.device).to(feat)[:, None] + frac).reshape(-1)
    ys = y1[:, None] + ys[None] * (roi_h / ph)[:, None]  # (K, ph*sr)
    xs = x1[:, None] + xs[None] * (roi_w / pw)[:, None]  # (K, pw*sr)
    y = ys[:, :, None].expand(-1, -1, pw * sr).reshape(-1)
    x = xs[:, None, :].expand(-1, ph * sr, -1).reshape(-1)
    batch = rois[:, 0].long().repeat_interleave(ph * sr * pw * sr)
    samples = _bilinear(feat, batch, y, x)  # (K * ph*sr * pw*sr, C)
    samples = samples.reshape(num_rois, ph, sr, pw, sr, -1)
    return samples.mean(dim=(2, 4)).permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------
# Set prediction: Hungarian matching with the DETR cost
# ---------------------------------------------------------------------------------------------


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment of rows to columns (``scipy`` linear_sum_assignment).

    ``cost: (N, M)`` -> ``(rows, cols)``, two ``LongTensor (min(N, M),)`` with rows ascending;
    ``cost[rows, cols].sum()`` is minimal over all one-to-one matchings.
    """
    from scipy.optimize import linear_sum_assignment

    if not torch.is_tensor(cost) or cost.ndim != 2 or not cost.is_floating_point():
        raise ValueError(
            f"cost must be a floating tensor of shape (N, M), got {getattr(cost, 'shape', cost)}"
        )
    if not torch.isfinite(cost).all():
        raise ValueError("cost contains NaN or infinite entries")
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    return (
        torch.as_tensor(rows, dtype=torch.long, device=cost.device),
        torch.as_tensor(cols, dtype=torch.long, device=cost.device),
    )


def brute_force_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference for :func:`hungarian_match`: try all ``N!`` permutations (``cost: (N, N)``,
    N <= 8). Ties go to the first permutation in lexicographic order."""
    if not torch.is_tensor(cost) or cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be square (N, N), got {tuple(getattr(cost, 'shape', ()))}")
    if cost.shape[0] > 8:
        raise ValueError(f"cost is too large for brute force: N = {cost.shape[0]} > 8")
    n = cost.shape[0]
    perms = torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)
    totals = cost.cpu()[torch.arange(n), perms].sum(dim=1)
    best = perms[int(totals.argmin())]
    return torch.arange(n), best


def detr_match_cost(
    pred_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    w_cls: float = 1.0,
    w_l1: float = 5.0,
    w_giou: float = 2.0,
) -> torch.Tensor:
    """DETR's matching cost between N predictions and M targets -> ``(N, M)``.

    ``C[i, j] = -w_cls p_i(c_j) + w_l1 ||b_j - b_i||_1 + w_giou (1 - GIoU(b_j, b_i))`` with
    ``p_i = softmax(pred_logits[i])``. ``pred_logits: (N, K+1)`` (last class = no object),
    ``pred_boxes: (N, 4)`` and ``gt_boxes: (M, 4)`` in normalised ``(cx, cy, w, h)`` as in DETR,
    ``gt_labels: (M,)`` in ``[0, K)``.
    """
    if not torch.is_tensor(pred_logits) or pred_logits.ndim != 2:
        raise ValueError(
            f"pred_logits must have shape (N, K+1), got {tuple(getattr(pred_logits, 'shape', ()))}"
        )
    _check_boxes(pred_boxes, "pred_boxes", corners=False)
    _check_boxes(gt_boxes, "gt_boxes", corners=False)
    if pred_boxes.shape[0] != pred_logits.shape[0]:
        raise ValueError(f"pred_boxes must have {pred_logits.shape[0]} rows, one per prediction")
    if not torch.is_tensor(gt_labels) or gt_labels.shape != gt_boxes.shape[:1]:
        raise ValueError(f"gt_labels must have shape ({gt_boxes.shape[0]},), one per gt box")
    if ((gt_labels < 0) | (gt_labels >= pred_logits.shape[1] - 1)).any():
        raise ValueError(f"gt_labels must lie in [0, {pred_logits.shape[1] - 1})")
    prob = pred_logits.softmax(-1)[:, gt_labels]  # (N, M)
    l1 = torch.cdist(pred_boxes, gt_boxes, p=1)
    giou = generalized_box_iou(box_cxcywh_to_xyxy(pred_boxes), box_cxcywh_to_xyxy(gt_boxes))
    return -w_cls * prob + w_l1 * l1 + w_giou * (1 - giou)


# ---------------------------------------------------------------------------------------------
# Evaluation: average precision
# ---------------------------------------------------------------------------------------------


def average_precision(
    pred_boxes: torch.Tensor | Sequence[torch.Tensor],
    scores: torch.Tensor | Sequence[torch.Tensor],
    gt_boxes: torch.Tensor | Sequence[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """Single-class AP: area under the interpolated precision-recall curve (VOC 2010+, COCO).

    Over all images, detections are visited by decreasing score (stable). A detection is a true
    positive when its best-IoU not-yet-matched ground-truth box of the same image has
    ``IoU >= iou_threshold``; that box is then used up (a duplicate is a false positive).
    Precision is made non-increasing from the right and integrated over recall. Pass one
    image's ``(K, 4)``, ``(K,)``, ``(G, 4)`` tensors or lists of them, one per image.
    """
    if torch.is_tensor(pred_boxes):
        pred_boxes, scores, gt_boxes = [pred_boxes], [scores], [gt_boxes]
    if not len(pred_boxes) == len(scores) == len(gt_boxes):
        raise ValueError("pred_boxes, scores and gt_boxes must hold one entry per image")
    for i, (p, s, g) in enumerate(zip(pred_boxes, scores, gt_boxes, strict=True)):
        _check_boxes(p, f"pred_boxes[{i}]")
        _check_scores(s, p, f"scores[{i}]")
        _check_boxes(g, f"gt_boxes[{i}]")
    num_gt = sum(len(g) for g in gt_boxes)
    if num_gt == 0:
        raise ValueError("gt_boxes holds no ground-truth box: AP is undefined")
    image = torch.cat([torch.full((len(s),), i) for i, s in enumerate(scores)])
    index = torch.cat([torch.arange(len(s)) for s in scores])
    all_scores = torch.cat([s.detach().cpu().float() for s in scores])
    order = torch.sort(all_scores, descending=True, stable=True).indices
    ious = [box_iou(p.detach().cpu(), g.detach().cpu().to(p.dtype)) for p, g in
            zip(pred_boxes, gt_boxes, strict=True)]  # fmt: skip
    used = [torch.zeros(len(g), dtype=torch.bool) for g in gt_boxes]
    tp = torch.zeros(len(order))
    for rank, k in enumerate(order.tolist()):
        i, j = int(image[k]), int(index[k])
        if ious[i].shape[1] == 0:
            continue
        iou = ious[i][j].masked_fill(used[i], -1.0)
        best = int(iou.argmax())
        if iou[best] >= iou_threshold:
            tp[rank] = 1.0
            used[i][best] = True
    tp_cum = tp.cumsum(0)
    recall = tp_cum / num_gt
    precision = tp_cum / torch.arange(1, len(tp) + 1)
    recall = torch.cat([torch.zeros(1), recall])
    precision = torch.cat([torch.ones(1), precision])
    precision = precision.flip(0).cummax(0).values.flip(0)
    return float(((recall[1:] - recall[:-1]) * precision[1:]).sum())


# ---------------------------------------------------------------------------------------------
# Synthetic scenes with exact boxes
# ---------------------------------------------------------------------------------------------

SHAPE_CLASSES = ("rectangle", "disc")


def random_shapes_detection(
    n: int, size: int = 64, max_shapes: int = 2, seed: int = 0
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``n`` RGB scenes of 1..``max_shapes`` filled rectangles and discs on a noisy background.

    Returns images ``(n, 3, size, size)`` float32 in ``[0, 1]``, and per image its boxes
    ``(k, 4)`` (xyxy pixels, the exact tight box of the drawn pixels) and labels ``(k,)``
    (0 = rectangle, 1 = disc, see ``SHAPE_CLASSES``). Shapes are 10 to 28 pixels across and
    placed so that two boxes of one scene overlap with IoU below 0.1.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32, got {size!r}")
    if not isinstance(max_shapes, int) or max_shapes < 1:
        raise ValueError(f"max_shapes must be a positive int, got {max_shapes!r}")
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.empty((n, 3, size, size), dtype=np.float32)
    all_boxes, all_labels = [], []
    for i in range(n):
        image = rng.uniform(0.0, 0.25, size=(3, 1, 1)) + rng.normal(0, 0.04, (3, size, size))
        boxes: list[list[float]] = []
        labels: list[int] = []
        for _ in range(int(rng.integers(1, max_shapes + 1))):
            for _attempt in range(20):
                label = int(rng.integers(0, 2))
                if label == 0:
                    w, h = rng.integers(10, 29, size=2)
                    x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
                    mask = (cols >= x0) & (cols < x0 + w) & (rows >= y0) & (rows < y0 + h)
                else:
                    radius = rng.uniform(5.0, 14.0)
                    cx, cy = rng.uniform(radius, size - radius, size=2)
                    mask = (cols + 0.5 - cx) ** 2 + (rows + 0.5 - cy) ** 2 <= radius**2
                ys, xs = np.nonzero(mask)
                box = [xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0]
                candidate = torch.tensor([box], dtype=torch.float32)
                if boxes and box_iou(candidate, torch.tensor(boxes)).max() >= 0.1:
                    continue
                colour = rng.uniform(0.45, 1.0, size=3)
                image[:, mask] = colour[:, None] + rng.normal(0, 0.04, (3, int(mask.sum())))
                boxes.append([float(v) for v in box])
                labels.append(label)
                break
        images[i] = np.clip(image, 0.0, 1.0)
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.long))
    return torch.from_numpy(images), all_boxes, all_labels
