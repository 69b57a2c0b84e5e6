"""Every figure a chapter draws reaches the website with alt text or a caption.

myst-nb turns a code cell's metadata ``mystnb.image.alt`` into the ``alt`` of its images and
``mystnb.figure.caption`` into a ``<figure>`` with a ``<figcaption>`` around its outputs (for a
widget, around the widget, whose images are drawn later by JavaScript).

Which cells draw is decided by a heuristic on the source, not by running it. Outside function
bodies, a cell draws when it calls

- a Matplotlib figure function (``plt.show()``, ``plt.subplots``, ``plt.figure``, ...),
- a drawing helper of ``dlcourse.plot`` (``curves``, ``image_grid``, ...),
- a function defined earlier in the chapter whose body draws, or
- ``interact`` (as a call or a decorator) on such a function.

A cell that only defines a drawing function draws nothing; the cell that calls it does.
"""

import ast
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

from dlcourse import plot
from dlcourse.chapters import is_notebook_chapter

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
CHAPTERS = [c["file"] for part in TOC["parts"] for c in part["chapters"]]
NOTEBOOKS = [c for c in CHAPTERS if is_notebook_chapter(ROOT / f"{c}.md")]  # not plain pages

PYPLOT_FIGURE_CALLS = {"show", "figure", "subplots", "subplot", "subplot_mosaic"}
PYPLOT_FIGURE_CALLS |= {"imshow", "plot", "bar", "hist", "scatter"}  # these open a figure too
PLOT_HELPERS = {n for n in plot.__all__ if callable(getattr(plot, n))} - {"use_course_style"}
INTERACT = {"interact", "interact_manual", "interactive"}


def _callee(call: ast.Call) -> tuple[str | None, str]:
    """(object name or None, function name) of a call: ``plt.show()`` -> ("plt", "show")."""
    func = call.func
    if isinstance(func, ast.Call):  # a decorator with arguments: interact(k=(1, 7))(f)
        return _callee(func)
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    return None, func.id if isinstance(func, ast.Name) else ""


def _decorator_name(decorator: ast.expr) -> str:
    """``@widgets.interact(...)`` and ``@interact`` -> "interact"."""
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _calls_outside_functions(node: ast.AST):
    """The calls in ``node`` that run when it runs (function and class bodies excluded)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(child, ast.Call):
            yield child
        yield from _calls_outside_functions(child)


def _draws(calls, drawing_functions: set[str]) -> bool:
    """Whether one of ``calls`` draws a figure, given the chapter's drawing functions."""
    for call in calls:
        owner, name = _callee(call)
        if owner == "plt" and name in PYPLOT_FIGURE_CALLS:
            return True
        if name in PLOT_HELPERS or name in drawing_functions:
            return True
        if name in INTERACT and call.args and isinstance(call.args[0], ast.Name):
            if call.args[0].id in drawing_functions:
                return True
    return False


def figure_cells(notebook) -> list[int]:
    """Indices of the code cells of ``notebook`` that draw a figure (see the module docstring)."""
    drawing_functions: set[str] = set()
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(TransformerManager().transform_cell(cell.source))
        draws = False
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef):
                body_calls = [n for n in ast.walk(statement) if isinstance(n, ast.Call)]
                if _draws(body_calls, drawing_functions):
                    drawing_functions.add(statement.name)
                    draws |= any(_decorator_name(d) in INTERACT for d in statement.decorator_list)
            else:
                draws |= _draws(_calls_outside_functions(statement), drawing_functions)
        if draws:
            found.append(index)
    return found


def has_text_alternative(cell) -> bool:
    """Non-empty ``mystnb.image.alt`` or ``mystnb.figure.caption`` in the cell's metadata."""
    mystnb = cell.metadata.get("mystnb", {})
    alt = mystnb.get("image", {}).get("alt", "")
    caption = mystnb.get("figure", {}).get("caption", "")
    return bool(str(alt).strip() or str(caption).strip())


def undescribed_figures(notebook) -> list[int]:
    """Indices of the figure cells with neither alt text nor a caption."""
    return [i for i in figure_cells(notebook) if not has_text_alternative(notebook.cells[i])]


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_every_figure_has_alt_text_or_a_caption(chapter):
    notebook = jupytext.read(ROOT / f"{chapter}.md")
    missing = undescribed_figures(notebook)
    sources = [notebook.cells[i].source.splitlines()[0] for i in missing]
    assert not missing, (
        f"{chapter}: figure cells without mystnb image.alt or figure.caption: {sources}"
    )


def _notebook(*sources: str, described: set[int] = frozenset()):
    """A notebook of code cells; the cells at the indices in ``described`` have a caption."""
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    for i in described:
        cells[i].metadata["mystnb"] = {"figure": {"caption": "What the figure shows."}}
    return nbformat.v4.new_notebook(cells=cells)


def test_an_uncaptioned_figure_is_found():
    notebook = _notebook("import matplotlib.pyplot as plt", "plt.plot([1, 2])\nplt.show()")
    assert undescribed_figures(notebook) == [1]


def test_captions_and_alt_text_both_count():
    notebook = _notebook("fig, ax = plt.subplots()", "curves({'loss': [1, 0]})", described={0})
    assert undescribed_figures(notebook) == [1]
    notebook.cells[1].metadata["mystnb"] = {"image": {"alt": "A falling line."}}
    assert undescribed_figures(notebook) == []


def test_a_drawing_function_draws_where_it_is_called_not_where_it_is_defined():
    notebook = _notebook(
        "def draw(ax):\n    ax.imshow(x)\n\ndef panel():\n    fig, ax = plt.subplots()\n    draw(ax)",
        "print('no figure here')",
        "panel()",
    )
    assert figure_cells(notebook) == [2]


def test_widgets_that_draw_are_figures():
    decorated = "@widgets.interact(k=(1, 3))\ndef show(k=1):\n    plt.show()"
    called = "def show(k=1):\n    curves({'k': [k]})\n\n_ = widgets.interact(show, k=(1, 3))"
    no_plot = "@widgets.interact(k=(1, 3))\ndef echo(k=1):\n    print(k)"
    assert figure_cells(_notebook(decorated, called, no_plot)) == [0, 1]


def test_magics_do_not_break_the_parser():
    notebook = _notebook("%matplotlib inline\n!echo hi\nplt.figure()")
    assert undescribed_figures(notebook) == [0]
