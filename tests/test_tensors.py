"""Chapter 1.1 kernels: the digits options, the matrix plots and the exercise checks."""

import matplotlib

matplotlib.use("Agg")  # tests only; never export MPLBACKEND for the book build

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlcourse import data, plot  # noqa: E402
from dlcourse.exercises import WrongAnswerError, check  # noqa: E402

# ---------------------------------------------------------------------------------------------
# data.digits


def test_digits_images_are_the_flat_vectors_reshaped():
    flat = data.digits()
    images = data.digits(flatten=False)
    assert images[0].shape == (len(flat[0]), 1, 8, 8)
    for a, b in zip(flat, images, strict=True):
        assert torch.equal(a.reshape(b.shape), b)


def test_digits_scale01_false_keeps_the_raw_pixels():
    raw = data.digits(scale01=False)[0]
    torch.testing.assert_close(raw / 16.0, data.digits()[0])
    assert raw.max() == 16.0 and raw.dtype == torch.float32


def test_digits_classes_are_kept_and_relabelled_in_the_given_order():
    x_train, y_train, x_test, y_test = data.digits(classes=[8, 3])
    labels = torch.cat([y_train, y_test])
    assert set(labels.tolist()) == {0, 1} and len(labels) == 174 + 183  # 8s and 3s in sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    eights = torch.tensor(bunch.data[bunch.target == 8] / 16.0, dtype=torch.float32)
    first_eight = x_train[y_train == 0][0]
    assert (eights == first_eight).all(dim=1).any()
    with pytest.raises(ValueError, match="classes"):
        data.digits(classes=[3, 3])
    with pytest.raises(ValueError, match="classes"):
        data.digits(classes=[10])


def test_digits_pad_to_centres_the_image_in_zeros():
    padded = data.digits(pad_to=32, flatten=False)[0]
    plain = data.digits(flatten=False)[0]
    assert padded.shape[-2:] == (32, 32)
    torch.testing.assert_close(padded[..., 12:20, 12:20], plain)
    assert padded.sum() == plain.sum()
    assert data.digits(pad_to=9)[0].shape[1] == 81
    with pytest.raises(ValueError, match="pad_to"):
        data.digits(pad_to=4)


# ---------------------------------------------------------------------------------------------
# plot.heatmap and plot.plot_linear_map


def test_heatmap_centres_signed_matrices_and_annotates():
    ax = plot.heatmap(torch.tensor([[-1.0, 2.0], [0.5, 0.0]]), xlabels=["a", "b"], annotate=True)
    image = ax.images[0]
    assert image.get_clim() == (-2.0, 2.0)
    assert [t.get_text() for t in ax.texts] == ["-1", "2", "0.5", "0"]
    ax = plot.heatmap(np.arange(6.0).reshape(2, 3), colorbar=False)
    assert ax.images[0].get_clim() == (0.0, 5.0)
    with pytest.raises(ValueError, match="M must be a matrix"):
        plot.heatmap(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="xlabels"):
        plot.heatmap(torch.zeros(2, 3), xlabels=["a"])
    plt.close("all")


def test_plot_linear_map_draws_the_image_of_the_unit_circle():
    A = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    ax = plot.plot_linear_map(A)
    ellipse = next(line for line in ax.lines if line.get_label() == "its image")
    points = np.stack(ellipse.get_data())
    longest = np.linalg.norm(points, axis=0).max()
    assert abs(longest - torch.linalg.matrix_norm(A, 2).item()) < 1e-3
    with pytest.raises(ValueError, match="A must be a 2x2"):
        plot.plot_linear_map(torch.eye(3))
    plot.plot_linear_map(torch.zeros(2, 2))  # a zero map draws without dividing by zero
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# exercise checks: wrong answers get the right hint


def _wrong(exercise_id, answer, pattern):
    with pytest.raises(WrongAnswerError, match=pattern):
        check(exercise_id, answer)


def test_predict_shapes_messages():
    right = [(5, 3), (2, 3, 4), (8, 7, 6, 5), "RuntimeError"]
    assert repr(check("ex-tensors-predict-shapes", right)).startswith("✔")
    as_sizes = [torch.Size(s) if isinstance(s, tuple) else RuntimeError for s in right]
    assert repr(check("ex-tensors-predict-shapes", as_sizes)).startswith("✔")
    _wrong("ex-tensors-predict-shapes", [*right[:3], (4, 3)], "expression 4.*equal or contain a 1")
    _wrong(
        "ex-tensors-predict-shapes", ["RuntimeError", *right[1:]], "expression 1 .*does broadcast"
    )
    _wrong("ex-tensors-predict-shapes", [right[0], (3, 2, 4), *right[2:]], "expression 2.*order")
    _wrong("ex-tensors-predict-shapes", [right[0], (3, 4), *right[2:]], "expression 2.*dimensions")
    _wrong("ex-tensors-predict-shapes", [*right[:3], "ValueError"], "class")
    _wrong("ex-tensors-predict-shapes", right[:3], "4 items")


def test_matvec_loop_messages():
    assert repr(check("ex-tensors-matvec-loop", lambda W, x: W @ x)).startswith("✔")
    _wrong("ex-tensors-matvec-loop", lambda W, x: (W @ x)[:, None], "1-D tensor")
    _wrong("ex-tensors-matvec-loop", lambda W, x: W.T @ x, "W\\^T x")
    _wrong("ex-tensors-matvec-loop", lambda W, x: (W @ x).float(), "dtype")
    _wrong("ex-tensors-matvec-loop", lambda W, x: W.sum(1) * x.sum(), "values differ")


def test_hwc_to_nchw_messages():
    _wrong("ex-tensors-hwc-to-nchw", lambda im: im.permute(0, 3, 2, 1).float() / 255, "swapped")
    _wrong("ex-tensors-hwc-to-nchw", lambda im: im.permute(0, 3, 1, 2).float(), "divide")
    _wrong("ex-tensors-hwc-to-nchw", lambda im: im.permute(0, 3, 1, 2).double() / 255, "dtype")
    n_c_h_w = lambda im: (im.shape[0], 3, im.shape[1], im.shape[2])  # noqa: E731
    _wrong("ex-tensors-hwc-to-nchw", lambda im: im.reshape(n_c_h_w(im)).float() / 255, "scrambled")
    _wrong("ex-tensors-hwc-to-nchw", lambda im: im.permute(0, 3, 1, 2)[0] / 255, "wrong shape")


def test_norms_and_cov_messages():
    X = np.array([[2.0, 1.0], [4.0, 3.0], [6.0, 2.0], [8.0, 7.0], [10.0, 7.0]])
    right = {"l1": 5.0, "l2": 11**0.5, "linf": 3.0, "cov": np.cov(X, rowvar=False)}
    assert repr(check("ex-tensors-norms-cov", right)).startswith("✔")
    _wrong("ex-tensors-norms-cov", {**right, "l1": 3.0}, "ABSOLUTE")
    _wrong("ex-tensors-norms-cov", {**right, "l2": 11.0}, "ROOT")
    _wrong("ex-tensors-norms-cov", {**right, "cov": np.cov(X)}, "rowvar=False")
    _wrong("ex-tensors-norms-cov", {**right, "cov": np.cov(X, rowvar=False, ddof=0)}, "N - 1")
    _wrong("ex-tensors-norms-cov", {**right, "cov": X.T @ X / 4}, "mean")
    _wrong("ex-tensors-norms-cov", {"l1": 5.0}, "keys")
    _wrong("ex-tensors-norms-cov", (5.0, 3.3, 3.0, 1.0), "dict")
