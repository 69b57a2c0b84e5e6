"""MyST markup as plain Markdown: each rule on small strings, then every chapter's notebooks."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from dlcourse.assign import parse_chapter, student_notebook
from dlcourse.chapters import chapter_files
from dlcourse.colab import notebook_copy, read_repository
from dlcourse.myst import Targets, book_titles, chapter_targets, markdown_cells, to_markdown

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapter_files([ROOT / "chapters"])

TARGETS = Targets(
    chapter="03-vision/01-convolution",
    titles={
        "chap-convolution": "Convolution from scratch",
        "03-vision/01-convolution": "Convolution from scratch",
        "05-attention/01-attention": "Attention from scratch",
    },
    equations={"eq-a": 1, "eq-b": 2},
    exercises={"ex-first": 1, "ex-second": 2},
    figures={"fig-early": 1, "fig-late": 9},
)


def md(text, position=5):
    return to_markdown(text, TARGETS, position)


# ---------------------------------------------------------------------------------------------
# Rules


def test_label_lines_disappear():
    assert md("(chap-convolution)=\n# Convolution from scratch\n\nText.") == (
        "# Convolution from scratch\n\nText."
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a {term}`stride` b", "a stride b"),
        ("a {term}`kernels <convolution kernel>` b", "a kernels b"),
        ("{math}`x^2` is", "$x^2$ is"),
        ("see {ref}`chap-convolution`.", "see Convolution from scratch."),
        ("see {ref}`ch. 3.1 <chap-convolution>`.", "see ch. 3.1."),
        ("see {ref}`ex-second`", "see Exercise 2"),
        ("do {exercise}`ex-first`", "do Exercise 1"),
        ("read {doc}`01-convolution`", "read Convolution from scratch"),
        ("read {doc}`../05-attention/01-attention`", "read Attention from scratch"),
        ("read {doc}`/chapters/05-attention/01-attention.md`", "read Attention from scratch"),
        ("read {doc}`this page <../05-attention/01-attention>`", "read this page"),
        ("by {eq}`eq-b`,", "by (2),"),
    ],
)
def test_roles_become_their_text(source, expected):
    assert md(source) == expected


def test_unknown_labels_stay_as_their_text():
    assert md("{ref}`chap-nowhere`, {eq}`eq-z`, {numref}`fig-z`, {exercise}`ex-z`") == (
        "chap-nowhere, eq-z, fig-z, ex-z"
    )


def test_roles_in_code_spans_and_code_blocks_are_kept():
    source = "Write ``{term}`x` `` or `{ref}`y``.\n\n```text\n(label)=\n{eq}`eq-a`\n```"
    assert md(source) == source


def test_labelled_display_math_gets_its_number_as_a_tag():
    source = "$$\nx = 1,\n$$\n\nthen\n\n$$\ny = 2\n$$ (eq-b)\n\nand $$z$$ (eq-a)"
    assert md(source) == "$$\nx = 1,\n$$\n\nthen\n\n$$\ny = 2 \\tag{2}\n$$\n\nand $$z \\tag{1}$$"


def test_a_label_in_the_text_after_display_math_is_not_taken_for_the_equation():
    assert md("$$\nx\n$$\n(eq-a) is not a label here") == "$$\nx\n$$\n(eq-a) is not a label here"


@pytest.mark.parametrize(
    ("source", "position", "expected"),
    [
        ("As {numref}`fig-late` shows", 5, "As the figure below shows"),
        ("As {numref}`fig-early` shows", 5, "As the figure above shows"),
        ("{numref}`fig-late` shows", 5, "The figure below shows"),
        ("Done. {numref}`fig-early` shows", 5, "Done. The figure above shows"),
        ("(see {numref}`Fig. %s <fig-late>`)", 5, "(see the figure below)"),
        ("in {numref}`Fig %s <fig-z>`", 5, "in fig-z"),
        ("panel b of {numref}`Figure {number} <fig-early>`", 5, "panel b of the figure above"),
        ("the {numref}`plot <fig-late>`", 5, "the plot"),
    ],
)
def test_numref_points_up_or_down_to_the_figure(source, position, expected):
    assert md(source, position) == expected


def test_admonitions_become_blockquotes_with_a_bold_title():
    source = (
        "Before.\n\n:::{admonition} Note check: $x$ and {term}`y`\n:class: tip\nFirst {eq}`eq-a`.\n"
        "\nSecond.\n:::\n\nAfter."
    )
    assert md(source) == (
        "Before.\n\n> **Note check: $x$ and y**\n>\n> First (1).\n>\n> Second.\n\nAfter."
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("```{note}\nKeep it.\n```", "> **Note**\n>\n> Keep it."),
        ("```{warning} Hot.\nDo not touch.\n```", "> **Warning**\n>\n> Hot.\n> Do not touch."),
        (
            "::::{tip}\n:::{seealso}\nInner.\n:::\n::::",
            "> **Tip**\n>\n> > **See also**\n> >\n> > Inner.",
        ),
        ("```{seealso}\n```", "> **See also**"),
    ],
)
def test_admonition_names_and_fences(source, expected):
    assert md(source) == expected


def test_other_directives_keep_their_content():
    assert md("```{exercise} A title\n:label: ex-first\nDo {term}`it`.\n```") == "Do it."


def test_a_cell_with_nothing_left_is_dropped():
    label_only = nbformat.v4.new_markdown_cell("(chap-x)=")
    kept = nbformat.v4.new_markdown_cell("(chap-x)=\n# Title", metadata={"tags": ["a"]})
    assert markdown_cells(label_only, TARGETS, 0) == []
    [cell] = markdown_cells(kept, TARGETS, 0)
    assert cell.source == "# Title" and cell.metadata.tags == ["a"]


def test_book_titles_reads_labelled_headings_and_page_titles(tmp_path):
    page = tmp_path / "01-part" / "02-page.md"
    page.parent.mkdir()
    page.write_text("(chap-page)=\n# The page\n\n```python\n# not a title\n```\n\n(sec-b)=\n## B\n")
    assert book_titles(tmp_path) == {
        "chap-page": "The page",
        "sec-b": "B",
        "01-part/02-page": "The page",
    }


def test_chapter_targets_number_equations_exercises_and_place_figures():
    cells = [
        nbformat.v4.new_markdown_cell("$$\na\n$$ (eq-one)\n\n$$\nb\n$$\n\n$$ c $$ (eq-two)"),
        nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"figure": {"name": "fig-x"}}}),
        nbformat.v4.new_markdown_cell("$$\nd\n$$ (eq-three)"),
    ]
    targets = chapter_targets(
        ROOT / "chapters/03-vision/01-convolution.md", cells, ["ex-a", "ex-b"]
    )
    assert targets.equations == {"eq-one": 1, "eq-two": 2, "eq-three": 3}
    assert targets.exercises == {"ex-a": 1, "ex-b": 2}
    assert targets.figures == {"fig-x": 1}
    assert targets.titles["chap-attention"] == "Attention and self-attention from scratch"


# ---------------------------------------------------------------------------------------------
# Every chapter

ROLE = re.compile(r"\{(term|ref|numref|eq|exercise|doc|math)\}`")
CODE_SPAN = re.compile(r"(`+).*?\1", re.S)


def _labels(chapter):
    """Every label and figure name of the chapter's source, and its exercise ids."""
    text = chapter.read_text(encoding="utf-8")
    names = re.findall(r"^\(([^()\s]+)\)=", text, re.M)
    names += re.findall(r"\$\$ *\(([^()\s]+)\)", text)
    names += re.findall(r"^\s+name: (fig-\S+)", text, re.M)
    return set(names) | {e.id for e in parse_chapter(chapter)[2]}


def _markdown_without_code(notebook):
    return [CODE_SPAN.sub("", c.source) for c in notebook.cells if c.cell_type == "markdown"]


@pytest.mark.parametrize("variant", ["colab", "student"])
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_generated_notebooks_hold_no_myst_markup(chapter, variant):
    if variant == "colab":
        notebook = notebook_copy(chapter, read_repository(ROOT / "_config.yml"))
    else:
        notebook = student_notebook(chapter)
    labels = _labels(chapter)
    texts = _markdown_without_code(notebook)
    for text in texts:
        assert not ROLE.search(text), text
        assert not re.search(r"^\s*\([^()\s]+\)=\s*$", text, re.M), text
        assert not re.search(r"^\s*(:::|```)\{", text, re.M), text
        assert not {label for label in labels if label in text}, text
    tags = [int(n) for text in texts for n in re.findall(r"\\tag\{(\d+)\}", text)]
    assert tags == list(range(1, len(tags) + 1))
    prose = re.sub(r"\$\$.*?\$\$", "", "\n".join(texts), flags=re.S)
    assert all(f"({n})" in prose for n in tags)
    source = chapter.read_text(encoding="utf-8")
    assert len(tags) == len(re.findall(r"^\$\$ *\(", source, re.M))


def test_the_colab_copy_reads_exercises_like_the_student_notebook():
    chapter = ROOT / "chapters/03-vision/01-convolution.md"
    copy = notebook_copy(chapter, read_repository(ROOT / "_config.yml"))
    statements = [c.source for c in copy.cells if c.source.startswith("### Exercise")]
    student = [c.source for c in student_notebook(chapter).cells
               if c.source.startswith("### Exercise")]  # fmt: skip
    assert statements == student and len(statements) == 4
    assert [c.source for c in copy.cells].count("**Solution.**") == 4
    assert [c.id for c in copy.cells] == [f"cell-{i:03d}" for i in range(len(copy.cells))]
    code = [c for c in jupytext.read(chapter).cells if c.cell_type == "code"]
    copied = [c for c in copy.cells if c.cell_type == "code"]
    assert [c.source for c in copied[1:]] == [c.source for c in code[1:]]  # all but the bootstrap
    assert [c.metadata for c in copied] == [c.metadata for c in code]
