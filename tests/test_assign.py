"""Student and instructor notebooks generated from the chapters."""

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from dlcourse.assign import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    ChapterFormatError,
    instructor_notebook,
    main,
    parse_chapter,
    student_notebook,
)
from dlcourse.chapters import chapter_files
from dlcourse.exercises import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapter_files([ROOT / "chapters"])
# A student stub: a placeholder value or a function body that is still the starter's raise.
STUB = re.compile(r"^\s*[\w, ]+ = .*\.\.\.|raise NotImplementedError\s*(#.*)?$", re.M)


def _ids(chapter):
    return [e.id for e in parse_chapter(chapter)[2]]


def _cells(notebook, role):
    return {c.metadata["dlcourse"]["exercise"]: c for c in notebook.cells
            if c.metadata.get("dlcourse", {}).get("role") == role}  # fmt: skip


def _solution_only_lines(chapter):
    """Lines of the solutions that appear nowhere else in the chapter's code."""
    _, pieces, _ = parse_chapter(chapter)
    elsewhere = {line.strip() for kind, _, cell in pieces if kind != "solution"
                 for line in cell.source.split("\n")}  # fmt: skip
    return {line.strip() for kind, _, cell in pieces if kind == "solution" and cell.source
            for line in cell.source.split("\n")
            if len(line.strip()) > 12 and line.strip() not in elsewhere}  # fmt: skip


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_has_starters_and_checks_and_no_solution(chapter):
    notebook = student_notebook(chapter)
    text = json.dumps(notebook)
    ids = _ids(chapter)
    assert list(_cells(notebook, "answer")) == ids
    assert list(_cells(notebook, "check")) == ids
    for marker in ("solution-start", "solution-end", "BEGIN SOLUTION", "{exercise}"):
        assert marker not in text
    lines = {line.strip() for cell in notebook.cells for line in cell.source.split("\n")}
    solution_only = _solution_only_lines(chapter)
    assert solution_only  # the test has something to look for
    leaked = solution_only & lines
    assert not leaked, leaked
    info = notebook.metadata["dlcourse"]
    assert info["variant"] == "student" and [e["id"] for e in info["exercises"]] == ids
    nbformat.validate(notebook)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_instructor_notebook_is_an_nbgrader_source_without_stubs(chapter):
    notebook = instructor_notebook(chapter)
    answers, checks = _cells(notebook, "answer"), _cells(notebook, "check")
    assert list(answers) == list(checks) == _ids(chapter)
    for exercise_id, cell in answers.items():
        ast.parse(cell.source)  # runnable Python
        assert cell.source.count(BEGIN_SOLUTION) == cell.source.count(END_SOLUTION) >= 1
        assert not STUB.search(cell.source), cell.source
        grading = cell.metadata["nbgrader"]
        assert grading["solution"] and not grading["grade"] and grading["grade_id"] == exercise_id
    for exercise_id, cell in checks.items():
        grading = cell.metadata["nbgrader"]
        assert grading["grade"] and grading["locked"] and not grading["solution"]
        assert grading["points"] == EXERCISES[exercise_id].points
        assert grading["schema_version"] == 3
    grade_ids = [
        c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata
    ]
    assert len(grade_ids) == len(set(grade_ids))
    nbformat.validate(notebook)


def test_a_stub_function_keeps_its_signature_around_the_solution_region():
    notebook = instructor_notebook(ROOT / "chapters/03-vision/01-convolution.md")
    source = _cells(notebook, "answer")["ex-conv-im2col"].source
    assert source.startswith("def my_conv2d_im2col(x, w, b=None,")
    assert "    " + BEGIN_SOLUTION in source and source.rstrip().endswith(END_SOLUTION)


def test_generated_files_are_stable_and_the_cli_writes_both_variants(tmp_path):
    first = sorted(p.relative_to(tmp_path) for p in (tmp_path / "a").rglob("*.ipynb"))
    assert main([str(ROOT / "chapters/00-start"), "--out", str(tmp_path / "a")]) == 0
    assert main([str(ROOT / "chapters/00-start"), "--out", str(tmp_path / "b")]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.ipynb"))
    assert not first and [str(f) for f in files] == [
        "instructor/00-start/01-how-to-use.ipynb", "student/00-start/01-how-to-use.ipynb"]  # fmt: skip
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert main([str(tmp_path / "nothing-here"), "--out", str(tmp_path)]) == 2


BROKEN_CHAPTER = """\
---
jupytext:
  text_representation: {extension: .md, format_name: myst}
---

```{exercise} A title
:label: ex-demo
Do it.
```

```{code-cell} ipython3
:tags: [exercise-starter]

x = ...
```

```{solution-start} ex-demo
:class: dropdown
```

```{code-cell} ipython3
x = 1
```

```{solution-end}
```
"""


def test_a_malformed_exercise_is_reported_by_name(tmp_path):
    chapter = tmp_path / "01-demo.md"
    chapter.write_text(BROKEN_CHAPTER, encoding="utf-8")
    with pytest.raises(ChapterFormatError, match="ex-demo has no check cell"):
        parse_chapter(chapter)
    chapter.write_text(BROKEN_CHAPTER.replace("{solution-start} ex-demo", "{solution-start} ex-x"))
    with pytest.raises(ChapterFormatError, match="does not follow its exercise"):
        parse_chapter(chapter)
