"""Tests for dlcourse.augment: batched, seeded augmentation ops in plain torch."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from dlcourse.augment import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    augment,
    color_jitter,
    hflip,
    random_crop_pad,
    random_hflip,
    random_resized_crop,
)


def _images(n=4, c=3, h=12, w=10, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_hflip_matches_torch_flip():
    x = _images()
    torch.testing.assert_close(hflip(x), torch.flip(x, dims=[3]))


def test_random_hflip_flips_each_image_or_keeps_it():
    x = _images(n=16)
    out = random_hflip(x, generator=torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)
    assert torch.equal(random_hflip(x, p=0.0), x)


def test_random_crop_pad_is_a_window_of_the_padded_image():
    x = _images(n=6, h=8, w=8)
    out = random_crop_pad(x, size=8, pad=2, generator=torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2))
    for o, p in zip(out, padded, strict=True):
        windows = [p[:, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(o, w) for w in windows)


def test_random_crop_pad_without_pad_is_identity_and_seeded():
    square = _images(h=9, w=9)
    assert torch.equal(random_crop_pad(square, size=9, pad=0), square)
    a = random_crop_pad(square, 9, 3, generator=torch.Generator().manual_seed(5))
    b = random_crop_pad(square, 9, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_random_resized_crop_full_box_matches_interpolate():
    x = _images(h=16, w=16)
    out = random_resized_crop(x, size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    expected = F.interpolate(x, size=8, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_random_resized_crop_subbox_matches_crop_then_interpolate():
    from dlcourse.augment import _crop_resize

    x = _images(n=2, h=20, w=20)
    boxes = torch.tensor([[2.0, 4.0, 12.0, 8.0], [6.0, 0.0, 8.0, 16.0]])
    out = _crop_resize(x, boxes, 4)
    for k, (y0, x0, h, w) in enumerate(boxes.int().tolist()):
        crop = x[k : k + 1, :, y0 : y0 + h, x0 : x0 + w]
        expected = F.interpolate(crop, size=4, mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[k : k + 1], expected, rtol=1e-5, atol=1e-5)


def test_contrast_identity_and_constant_mean():
    x = _images()
    torch.testing.assert_close(adjust_contrast(x, 1.0), x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    torch.testing.assert_close(adjust_contrast(x, 0.0), mean)
    assert adjust_contrast(x, 5.0).min() >= 0 and adjust_contrast(x, 5.0).max() <= 1


def test_brightness_scales_and_clamps_per_image():
    x = _images(n=2)
    out = adjust_brightness(x, torch.tensor([0.5, 3.0]))
    torch.testing.assert_close(out[0], 0.5 * x[0])
    torch.testing.assert_close(out[1], (3 * x[1]).clamp(0, 1))


def test_hue_keeps_gray_and_is_periodic():
    gray = torch.rand(2, 1, 5, 5).expand(-1, 3, -1, -1)
    torch.testing.assert_close(adjust_hue(gray, 0.3), gray, rtol=1e-5, atol=1e-5)
    x = 0.25 + 0.5 * _images()  # away from the clamp
    torch.testing.assert_close(adjust_hue(x, 0.0), x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(adjust_hue(x, 0.5), adjust_hue(x, -0.5), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(adjust_hue(x, 0.25), x, atol=1e-3)


def test_color_jitter_factors_stay_in_range():
    x = torch.full((200, 1, 2, 2), 0.25)
    out = color_jitter(x, brightness=0.4, generator=torch.Generator().manual_seed(0))
    factors = out[:, 0, 0, 0] / 0.25
    assert factors.min() >= 0.6 - 1e-6 and factors.max() <= 1.4 + 1e-6
    assert factors.std() > 0.1
    assert torch.equal(color_jitter(x), x)


def test_augment_chains_ops_and_is_reproducible():
    x = _images(n=8, h=10, w=10)
    ops = [partial(random_crop_pad, size=10, pad=2), random_hflip,
           partial(color_jitter, brightness=0.2, contrast=0.2, hue=0.1)]  # fmt: skip
    a = augment(x, ops, generator=torch.Generator().manual_seed(3))
    b = augment(x, ops, generator=torch.Generator().manual_seed(3))
    c = augment(x, ops, generator=torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(augment(x, []), x)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: hflip(x[0]), "x"),
        (lambda x: random_crop_pad(x, size=30, pad=1), "size"),
        (lambda x: random_crop_pad(x, size=8, pad=-1), "pad"),
        (lambda x: adjust_contrast(x, -1.0), "f"),
        (lambda x: adjust_brightness(x, torch.ones(3)), "f"),
        (lambda x: adjust_hue(x, 0.7), "h"),
        (lambda x: adjust_hue(x[:, :1], 0.1), "channels"),
        (lambda x: color_jitter(x, hue=0.6), "hue"),
        (lambda x: color_jitter(x, brightness=-0.1), "brightness"),
        (lambda x: random_resized_crop(x, 8, scale=(0.0, 1.0)), "scale"),
        (lambda x: random_hflip(x, p=1.5), "p"),
    ],
)
def test_bad_input_raises_with_the_argument_name(call, match):
    with pytest.raises(ValueError, match=match):
        call(_images())


def test_augment_rejects_non_callable_ops():
    with pytest.raises(TypeError, match="ops"):
        augment(_images(), [3])
