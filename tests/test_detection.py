"""Tests for dlcourse.detection: box ops on hand-computed cases, NMS rules, RoI ops against
F.grid_sample, Hungarian matching against brute force, AP on known rankings."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from dlcourse.detection import (
    SHAPE_CLASSES,
    assign_anchors,
    average_precision,
    batched_nms,
    bilinear_interpolate,
    box_area,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xyxy_to_cxcywh,
    brute_force_match,
    decode_boxes,
    detr_match_cost,
    encode_boxes,
    generalized_box_iou,
    hungarian_match,
    multibox_prior,
    nms,
    random_shapes_detection,
    roi_align,
    roi_pool,
)
from dlcourse.exercises import WrongAnswerError, check


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def _random_boxes(n, generator, scale=10.0):
    xy = torch.rand(n, 2, generator=generator) * scale
    wh = torch.rand(n, 2, generator=generator) * scale / 2 + 0.1
    return torch.cat([xy, xy + wh], dim=1)


# --- boxes -----------------------------------------------------------------------------------


def test_box_area_and_conversions_hand_computed():
    boxes = _t([[0, 0, 2, 2], [1, 2, 4, 3], [5, 5, 5, 7]])
    torch.testing.assert_close(box_area(boxes), _t([4, 3, 0]))
    cxcywh = box_xyxy_to_cxcywh(boxes)
    torch.testing.assert_close(cxcywh, _t([[1, 1, 2, 2], [2.5, 2.5, 3, 1], [5, 6, 0, 2]]))
    torch.testing.assert_close(box_cxcywh_to_xyxy(cxcywh), boxes)


def test_box_iou_hand_computed_and_matches_loop():
    a, b = _t([[0, 0, 2, 2]]), _t([[1, 1, 3, 3]])
    torch.testing.assert_close(box_iou(a, b), _t([[1 / 7]]))
    g = torch.Generator().manual_seed(0)
    a, b = _random_boxes(5, g), _random_boxes(4, g)
    loop = torch.zeros(5, 4)
    for i, j in itertools.product(range(5), range(4)):
        w = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
        h = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
        area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
        loop[i, j] = w * h / (area(a[i]) + area(b[j]) - w * h)
    torch.testing.assert_close(box_iou(a, b), loop)


def test_iou_and_giou_properties():
    g = torch.Generator().manual_seed(1)
    a, b = _random_boxes(6, g), _random_boxes(7, g)
    torch.testing.assert_close(box_iou(a, b), box_iou(b, a).T)
    torch.testing.assert_close(generalized_box_iou(a, b), generalized_box_iou(b, a).T)
    torch.testing.assert_close(box_iou(a, a).diagonal(), torch.ones(6))
    torch.testing.assert_close(generalized_box_iou(a, a).diagonal(), torch.ones(6))
    giou = generalized_box_iou(a, b)
    assert (giou <= box_iou(a, b) + 1e-6).all() and (giou >= -1).all()
    disjoint = generalized_box_iou(_t([[0, 0, 1, 1]]), _t([[2, 0, 3, 1], [5, 5, 6, 6]]))
    assert (disjoint < 0).all()
    torch.testing.assert_close(disjoint[0, 0], torch.tensor(-1 / 3))
    assert box_iou(_t([[0, 0, 1, 1]]), _t([[2, 0, 3, 1]])).item() == 0.0


def test_empty_boxes_have_iou_zero():
    degenerate = _t([[1, 1, 1, 1]])
    assert box_iou(degenerate, degenerate).item() == 0.0


@pytest.mark.parametrize("bad", [torch.zeros(4), torch.zeros(3, 5), torch.zeros(2, 4, 1)])
def test_bad_box_shapes_raise(bad):
    with pytest.raises(ValueError, match=r"a must have shape \(N, 4\)"):
        box_iou(bad, _t([[0, 0, 1, 1]]))


def test_invalid_boxes_raise():
    with pytest.raises(ValueError, match="b has invalid boxes"):
        box_iou(_t([[0, 0, 1, 1]]), _t([[2, 0, 1, 1]]))
    with pytest.raises(ValueError, match="boxes has invalid boxes"):
        box_cxcywh_to_xyxy(_t([[0, 0, -1, 1]]))
    with pytest.raises(TypeError, match="boxes must be a floating-point"):
        box_area(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        box_area(_t([[0, 0, float("nan"), 1]]))


# --- anchors, labelling, offsets ---------------------------------------------------------------


def test_multibox_prior_shape_count_and_first_anchors():
    anchors = multibox_prior((4, 4), sizes=(0.75, 0.5, 0.25), ratios=(1, 2, 0.5))
    assert anchors.shape == (1, 4 * 4 * 5, 4)
    first = anchors[0, :5]
    c = 0.125
    s2 = math.sqrt(2)
    expected = _t([[c - 0.375, c - 0.375, c + 0.375, c + 0.375],
                   [c - 0.25, c - 0.25, c + 0.25, c + 0.25],
                   [c - 0.125, c - 0.125, c + 0.125, c + 0.125],
                   [c - 0.375 * s2, c - 0.375 / s2, c + 0.375 * s2, c + 0.375 / s2],
                   [c - 0.375 / s2, c - 0.375 * s2, c + 0.375 / s2, c + 0.375 * s2]])  # fmt: skip
    torch.testing.assert_close(first, expected)
    assert multibox_prior((561, 728), (0.75, 0.5, 0.25), (1, 2, 0.5)).shape[1] == 2_042_040


def test_multibox_prior_bad_input_raises():
    with pytest.raises(ValueError, match="feat_hw"):
        multibox_prior((0, 4), (0.5,), (1,))
    with pytest.raises(ValueError, match="ratios"):
        multibox_prior((2, 2), (0.5,), ())


def test_assign_anchors_greedy_then_threshold():
    gt = _t([[0, 0, 4, 4], [6, 6, 8, 8]])
    anchors = _t([[0, 0, 4, 4],  # IoU 1 with gt 0
                  [0, 0, 4, 3],  # IoU 0.75 with gt 0: above threshold
                  [0, 0, 2, 2],  # IoU 0.25: background
                  [5, 5, 8, 8],  # IoU 4/9 with gt 1: below 0.5, but the best for gt 1
                  [20, 20, 21, 21]])  # fmt: skip
    assert assign_anchors(gt, anchors).tolist() == [0, 0, -1, 1, -1]
    assert assign_anchors(gt[:0], anchors).tolist() == [-1] * 5


def test_encode_decode_round_trip_and_hand_case():
    anchors, gt = _t([[0, 0, 2, 2]]), _t([[1, 0, 3, 4]])
    # centres (1, 1) -> (2, 2), sizes (2, 2) -> (2, 4)
    expected = _t([[0.5 / 0.1, 0.5 / 0.1, 0.0, math.log(2) / 0.2]])
    torch.testing.assert_close(encode_boxes(anchors, gt), expected)
    g = torch.Generator().manual_seed(2)
    anchors, gt = _random_boxes(20, g), _random_boxes(20, g)
    torch.testing.assert_close(decode_boxes(anchors, encode_boxes(anchors, gt)), gt)
    with pytest.raises(ValueError, match="gt must have the shape of anchors"):
        encode_boxes(anchors, gt[:3])
    with pytest.raises(ValueError, match="deltas"):
        decode_boxes(anchors, torch.zeros(3, 4))


# --- NMS -------------------------------------------------------------------------------------


def test_nms_overlapping_disjoint_and_threshold_edge():
    boxes = _t([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = _t([0.9, 0.8, 0.7, 0.95])
    # IoU(3, 0) = 0.9, IoU(3, 1) = 72/(90+100-72) = 0.61, IoU(0, 1) = 81/119 = 0.68
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.65).tolist() == [3, 1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]
    disjoint = _t([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]])
    assert nms(disjoint, _t([0.1, 0.3, 0.2]), 0.0).tolist() == [1, 2, 0]
    # a box at exactly the threshold survives: IoU([0,0,3,1],[1,0,4,1]) = 2/4, exact in binary
    assert nms(_t([[0, 0, 3, 1], [1, 0, 4, 1]]), _t([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_nms_tie_rule_keeps_lower_index():
    boxes = _t([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2.1]])
    assert nms(boxes, _t([0.5, 0.5, 0.5]), 0.5).tolist() == [0]
    assert nms(boxes[[1, 0]], _t([0.5, 0.5]), 0.5).tolist() == [0]
    assert nms(boxes, _t([0.5, 0.5, 0.7]), 0.5).tolist() == [2]


def _brute_nms(boxes, scores, thr):
    """Definition: a box is kept iff no kept box with a higher rank overlaps it by > thr."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept = []
    for i in order:
        if all(box_iou(boxes[[i]], boxes[[k]]).item() <= thr for k in kept):
            kept.append(i)
    return kept


def test_nms_matches_brute_force_on_jittered_boxes():
    g = torch.Generator().manual_seed(3)
    base = _random_boxes(3, g, scale=40)
    boxes = base.repeat_interleave(8, 0) + torch.randn(24, 4, generator=g)
    boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]),
                       torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)  # fmt: skip
    scores = torch.rand(24, generator=g)
    for thr in (0.3, 0.5, 0.7):
        assert nms(boxes, scores, thr).tolist() == _brute_nms(boxes, scores, thr)


def test_batched_nms_equals_per_class_nms():
    g = torch.Generator().manual_seed(4)
    boxes = _random_boxes(30, g, scale=5)
    scores = torch.rand(30, generator=g)
    labels = torch.randint(0, 3, (30,), generator=g)
    kept = batched_nms(boxes, scores, labels, 0.5)
    per_class = []
    for c in range(3):
        idx = torch.nonzero(labels == c).squeeze(1)
        per_class += idx[nms(boxes[idx], scores[idx], 0.5)].tolist()
    per_class.sort(key=lambda i: -float(scores[i]))
    assert kept.tolist() == per_class
    assert len(nms(boxes, scores, 0.5)) < len(kept)
    with pytest.raises(TypeError, match="labels must be an integer"):
        batched_nms(boxes, scores, labels.float(), 0.5)


def test_nms_bad_input_raises():
    with pytest.raises(ValueError, match="scores must be a tensor of shape"):
        nms(_t([[0, 0, 1, 1]]), _t([0.5, 0.2]), 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms(_t([[0, 0, 1, 1]]), _t([0.5]), 1.5)


# --- RoI ops ---------------------------------------------------------------------------------


def test_bilinear_interpolate_matches_grid_sample():
    g = torch.Generator().manual_seed(5)
    feat = torch.randn(3, 5, 7, generator=g)
    y = torch.rand(50, generator=g) * 6 - 1  # in [-1, H] = [-1, 5]
    x = torch.rand(50, generator=g) * 8 - 1  # in [-1, W] = [-1, 7]
    grid = torch.stack([2 * x / 6 - 1, 2 * y / 4 - 1], -1).view(1, 1, -1, 2)
    ref = F.grid_sample(feat[None], grid, align_corners=True, padding_mode="border")[0, :, 0]
    torch.testing.assert_close(bilinear_interpolate(feat, y, x), ref)
    # hand case: the centre of four pixels is their mean; a point far outside is 0
    small = _t([[[0, 1], [2, 3]]])
    out = bilinear_interpolate(small, _t([0.5, 0, 5]), _t([0.5, 1, 5]))
    torch.testing.assert_close(out, _t([[1.5, 1.0, 0.0]]))


def _ramp(h=8, w=8):
    yy, xx = torch.meshgrid(torch.arange(h * 1.0), torch.arange(w * 1.0), indexing="ij")
    return (xx + 2 * yy)[None, None]


def test_roi_align_on_a_ramp_equals_bin_centres():
    rois = _t([[0, 1.3, 2.2, 5.7, 6.1]])
    # aligned: RoI starts at (0.8, 1.7), bins 2.2 wide and 1.95 high; centres x 1.9, 4.1
    expected = _t([[1.9 + 2 * 2.675, 4.1 + 2 * 2.675], [1.9 + 2 * 4.625, 4.1 + 2 * 4.625]])
    torch.testing.assert_close(roi_align(_ramp(), rois, 2)[0, 0], expected)


def test_roi_align_matches_grid_sample_average():
    g = torch.Generator().manual_seed(6)
    feat = torch.randn(2, 3, 9, 11, generator=g)
    rois = _t([[1, 0.5, 1.0, 7.5, 6.0], [0, 2.0, 0.0, 10.0, 8.5]])
    out = roi_align(feat, rois, (3, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = x1 - 0.5, y1 - 0.5, x2 - 0.5, y2 - 0.5
        ys = y1 + (torch.arange(6) + 0.5) * (y2 - y1) / 6
        xs = x1 + (torch.arange(4) + 0.5) * (x2 - x1) / 4
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([2 * gx / 10 - 1, 2 * gy / 8 - 1], -1)[None]
        samples = F.grid_sample(feat[[int(b)]], grid, align_corners=True, padding_mode="border")
        ref = F.avg_pool2d(samples, 2)[0]
        torch.testing.assert_close(out[k], ref)


def test_roi_align_whole_map_returns_the_map():
    feat = torch.randn(1, 2, 4, 6, generator=torch.Generator().manual_seed(7))
    rois = _t([[0, 0, 0, 6, 4]])
    torch.testing.assert_close(roi_align(feat, rois, (4, 6), sampling_ratio=1)[0], feat[0])


def test_roi_pool_hand_computed_on_a_ramp():
    rois = _t([[0, 1.3, 2.2, 5.7, 6.1]])
    # corners round to (1, 2, 6, 6): columns {1,2,3},{4,5,6}, rows {2,3,4},{4,5,6}
    torch.testing.assert_close(roi_pool(_ramp(), rois, 2)[0, 0], _t([[11, 14], [15, 18]]))
    # spatial_scale 0.5 on image coordinates: the same RoI at twice the size
    torch.testing.assert_close(
        roi_pool(_ramp(), _t([[0, 2.6, 4.4, 11.4, 12.2]]), 2, spatial_scale=0.5),
        roi_pool(_ramp(), rois, 2),
    )


def test_roi_pool_matches_max_over_loops():
    g = torch.Generator().manual_seed(8)
    feat = torch.randn(2, 2, 10, 12, generator=g)
    rois = _t([[0, 0.4, 1.2, 9.6, 8.8], [1, 3.0, 3.0, 4.0, 5.0]])
    out = roi_pool(feat, rois, (3, 3))
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (round(v) for v in (x1, y1, x2, y2))
        h, w = y2 - y1 + 1, x2 - x1 + 1
        for i, j in itertools.product(range(3), range(3)):
            r0, r1 = y1 + math.floor(i * h / 3), y1 + math.ceil((i + 1) * h / 3)
            c0, c1 = x1 + math.floor(j * w / 3), x1 + math.ceil((j + 1) * w / 3)
            ref = feat[int(b), :, r0:r1, c0:c1].amax(dim=(1, 2))
            torch.testing.assert_close(out[k, :, i, j], ref)


def test_roi_ops_bad_input_raise():
    feat = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 5\)"):
        roi_align(feat, _t([[0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match="batch indices"):
        roi_pool(feat, _t([[1, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"feat must be a floating tensor of shape \(N, C, H, W\)"):
        roi_align(feat[0], _t([[0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match="invalid boxes"):
        roi_align(feat, _t([[0, 2, 0, 1, 1]]), 2)


# --- set prediction --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_hungarian_match_equals_brute_force(seed):
    cost = torch.rand(5, 5, generator=torch.Generator().manual_seed(seed))
    rows, cols = hungarian_match(cost)
    b_rows, b_cols = brute_force_match(cost)
    assert rows.tolist() == b_rows.tolist() and cols.tolist() == b_cols.tolist()
    perms = itertools.permutations(range(5))
    best = min(sum(cost[i, p[i]].item() for i in range(5)) for p in perms)
    assert cost[rows, cols].sum().item() == pytest.approx(best, rel=1e-6)


def test_hungarian_match_rectangular_and_bad_input():
    cost = _t([[4, 1, 3], [2, 0, 5]])  # 2 predictions x 3 targets... rows assigned once each
    rows, cols = hungarian_match(cost)
    assert rows.tolist() == [0, 1] and cost[rows, cols].sum().item() == 3.0
    with pytest.raises(ValueError, match="cost must be a floating tensor"):
        hungarian_match(torch.zeros(3))
    with pytest.raises(ValueError, match="cost contains NaN"):
        hungarian_match(_t([[float("inf")]]))


def test_detr_match_cost_hand_computed():
    logits = torch.log(_t([[0.5, 0.25, 0.25]]))  # two classes + no object
    pred = _t([[0.5, 0.5, 0.2, 0.2]])
    gt = _t([[0.5, 0.5, 0.2, 0.2], [0.6, 0.5, 0.2, 0.2]])
    cost = detr_match_cost(logits, pred, torch.tensor([0, 1]), gt)
    giou = 1 / 3  # the shifted box overlaps half: IoU 0.02/0.06, enclosing box = union
    torch.testing.assert_close(cost, _t([[-0.5, -0.25 + 5 * 0.1 + 2 * (1 - giou)]]))
    with pytest.raises(ValueError, match="gt_labels must lie"):
        detr_match_cost(logits, pred, torch.tensor([0, 2]), gt)


# --- AP and data -------------------------------------------------------------------------------


def test_average_precision_hand_computed():
    gt = _t([[0, 0, 10, 10], [20, 20, 30, 30]])
    perfect = average_precision(gt, _t([0.9, 0.8]), gt)
    assert perfect == pytest.approx(1.0)
    # ranked: TP, FP (duplicate of gt 0), TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    preds = _t([[0, 0, 10, 10], [0, 0, 10, 10.5], [20, 20, 30, 30]])
    ap = average_precision(preds, _t([0.9, 0.8, 0.7]), gt)
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # two images, one missed box: recall stops at 1/2
    ap2 = average_precision([gt[:1], gt[:0]], [_t([0.5]), _t([])], [gt[:1], gt[1:]])
    assert ap2 == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no ground-truth box"):
        average_precision(gt, _t([0.9, 0.8]), gt[:0])


def test_random_shapes_detection_boxes_are_tight():
    images, boxes, labels = random_shapes_detection(20, size=48, max_shapes=3, seed=1)
    assert images.shape == (20, 3, 48, 48) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    for x, b, lab in zip(images, boxes, labels, strict=True):
        assert 1 <= len(b) <= 3 and b.shape[1] == 4 and len(lab) == len(b)
        assert set(lab.tolist()) <= set(range(len(SHAPE_CLASSES)))
        x1, y1, x2, y2 = b[0].long().tolist()
        inside = x[:, y1:y2, x1:x2].mean(0)
        assert inside[0, :].max() > 0.4 and inside[:, 0].max() > 0.4  # top row, left column
        assert inside[-1, :].max() > 0.4 and inside[:, -1].max() > 0.4
    again = random_shapes_detection(20, size=48, max_shapes=3, seed=1)
    assert torch.equal(images, again[0])
    with pytest.raises(ValueError, match="size"):
        random_shapes_detection(2, size=8)


# --- exercises ---------------------------------------------------------------------------------


def test_exercise_checks_reject_wrong_answers():
    def iou_only(a, b):  # GIoU replaced by IoU
        iou = box_iou(
            torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32)
        )
        return iou.item(), iou.item()

    with pytest.raises(WrongAnswerError):
        check("ex-detection-iou-giou", iou_only)
    with pytest.raises(WrongAnswerError):
        check("ex-detection-anchor-count", lambda h, w, n, m: h * w * n * m)

    def nms_ge(boxes, scores, thr):  # suppresses at IoU == threshold too, and ignores ties
        order = scores.argsort(descending=True)
        keep = []
        for i in order.tolist():
            if all(box_iou(boxes[[i]], boxes[[k]]).item() < thr for k in keep):
                keep.append(i)
        return torch.tensor(keep)

    with pytest.raises(WrongAnswerError):
        check("ex-detection-nms", nms_ge)
    with pytest.raises(WrongAnswerError):
        check("ex-detection-focal", lambda p_t, alpha_t, gamma: -alpha_t * math.log(p_t))


def test_draw_boxes_adds_one_patch_per_box_and_checks_shape():
    import matplotlib.pyplot as plt

    from dlcourse.plot import draw_boxes

    fig, ax = plt.subplots()
    draw_boxes(ax, _t([[0, 0, 4, 4], [2, 2, 6, 5]]), labels=["a", "b"], scores=_t([0.9, 0.5]))
    assert len(ax.patches) == 2 and len(ax.texts) == 2
    with pytest.raises(ValueError, match="boxes must have shape"):
        draw_boxes(ax, _t([0, 0, 1, 1]))
    plt.close(fig)
