import matplotlib

matplotlib.use("Agg")  # tests only; never export MPLBACKEND for the book build

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlcourse import plot  # noqa: E402
from dlcourse.autograd import Value  # noqa: E402


def test_course_style_uses_the_colour_blind_safe_cycle():
    plot.use_course_style()
    colours = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    assert colours[0] == plot.PALETTE["blue"] and plot.PALETTE["orange"] in colours


def test_curves_draws_one_line_per_series():
    ax = plot.curves({"a": [3, 2, 1], "b": [1, 2]}, logy=True)
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="series"):
        plot.curves({})
    plt.close("all")


def test_image_grid_and_scatter_and_attention_map():
    fig = plot.image_grid(torch.rand(5, 1, 8, 8), labels=list("abcde"), ncols=3)
    assert len(fig.axes) == 6
    ax = plot.scatter2d({"data": torch.randn(20, 2)}, lim=3)
    assert ax.get_xlim() == (-3, 3)
    ax = plot.attention_map(torch.softmax(torch.randn(3, 4), -1), ["q1", "q2", "q3"])
    assert ax.get_ylabel() == "query"
    with pytest.raises(ValueError, match="weights"):
        plot.attention_map(torch.rand(2, 2, 2))
    with pytest.raises(ValueError, match="cloud"):
        plot.scatter2d({"bad": torch.randn(4, 3)})
    plt.close("all")


def test_computation_graph_draws_one_box_per_node():
    w1, x1, w2, x2, b = (
        Value(v, label=n) for v, n in zip([1, 2, -1, 3, 0.5], "wxvyb", strict=True)
    )
    loss = Value.sum([w1 * x1, w2 * x2, b]) ** 2
    loss.backward()
    ax = plot.computation_graph(loss)
    order = loss.topological_order()
    n_edges = sum(len(node.parents) for node in order)
    assert len(order) == 9 and n_edges == 8
    assert len(ax.texts) == len(order) + n_edges  # a box per node, an arrow per edge
    with pytest.raises(TypeError, match="Value"):
        plot.computation_graph(1.0)
    plt.close("all")
