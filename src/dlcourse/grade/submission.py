"""Reading a submitted notebook and planning how to grade it.

A plan is the list of steps the kernel runs: the student's code cells in their order, and, in
place of each check cell, the grader's own check (``probe.source``) on the answer expression
that the chapter's check cell passes. An exercise whose check cell was deleted is checked right
after its answer cell, or at the end of the notebook. Cells are found by the metadata that
``dlcourse.assign`` writes, or, if a student's tool dropped it, by the text ``check("<id>"``.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.assign import METADATA_KEY
from dlcourse.exercises import EXERCISES, probe

_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](ex-[\w-]+)["']""")


class UnreadableSubmission(ValueError):
    """The file is not a notebook the grader can run (the message says why)."""


@dataclass(frozen=True)
class Expected:
    """An exercise the submission is graded on."""

    id: str
    points: int
    answer: str | None  # the expression the check cell passes; None if unknown


@dataclass(frozen=True)
class Step:
    """One cell for the kernel: the student's code (``exercise`` None) or a check."""

    source: str
    cell: int  # the cell's number in the submission (1-based), 0 for a check added at the end
    exercise: str | None = None


def read_notebook(data: bytes) -> NotebookNode:
    """Parse a submission's bytes; raise ``UnreadableSubmission`` with a reason."""
    if not data.strip():
        raise UnreadableSubmission("the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableSubmission("the file is not text (not a Jupyter notebook)") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise UnreadableSubmission(
            f"the file is not valid JSON (corrupt notebook?): {error}"
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise UnreadableSubmission("the file is JSON but not a Jupyter notebook (no cell list)")
    try:
        notebook = nbformat.from_dict(raw)
        if notebook.get("nbformat", 4) < 4:
            notebook = nbformat.convert(notebook, 4)
        for cell in notebook.cells:
            if cell.get("cell_type") not in ("code", "markdown", "raw"):
                raise ValueError(f"unknown cell type {cell.get('cell_type')!r}")
            if not isinstance(cell.get("source"), str):
                cell.source = "".join(cell.get("source") or [])
            cell.setdefault("metadata", {})
    except Exception as error:  # any malformed structure is the submission's, not ours
        raise UnreadableSubmission(f"the notebook is malformed: {error}") from None
    return notebook


def _role(cell: NotebookNode) -> tuple[str | None, str | None]:
    info = cell.metadata.get(METADATA_KEY, {})
    return (info.get("exercise"), info.get("role")) if isinstance(info, dict) else (None, None)


def _called_exercise(cell: NotebookNode) -> str | None:
    exercise_id, role = _role(cell)
    if role == "check":
        return exercise_id
    found = _CHECK_CALL.search(cell.source)
    return found[1] if found else None


def _answer_in_cell(source: str, exercise_id: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "check"
            and len(node.args) == 2
            and getattr(node.args[0], "value", None) == exercise_id
        ):
            return ast.get_source_segment(source, node.args[1])  # fmt: skip
    return None


def chapter_of(notebook: NotebookNode) -> str | None:
    """The chapter a notebook belongs to: its metadata, else the exercises it checks."""
    info = notebook.metadata.get(METADATA_KEY, {})
    if isinstance(info, dict) and info.get("chapter"):
        return info["chapter"]
    chapters = Counter(
        EXERCISES[e].chapter
        for cell in notebook.cells
        if cell.cell_type == "code" and (e := _called_exercise(cell)) in EXERCISES
    )
    return chapters.most_common(1)[0][0] if chapters else None


def expected_exercises(chapter: str, notebook: NotebookNode | None) -> list[Expected]:
    """The chapter's registered exercises, with the answer expression each check receives."""
    if not any(ex.chapter == chapter for ex in EXERCISES.values()):
        raise UnreadableSubmission(f"no exercises are registered for chapter {chapter!r}")
    recorded: dict[str, str] = {}
    if notebook is not None:
        info = notebook.metadata.get(METADATA_KEY, {})
        for entry in info.get("exercises", []) if isinstance(info, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("answer"), str):
                recorded[entry.get("id")] = entry["answer"]
        for cell in notebook.cells:
            exercise_id = _called_exercise(cell) if cell.cell_type == "code" else None
            if exercise_id and exercise_id not in recorded:
                answer = _answer_in_cell(cell.source, exercise_id)
                if answer:
                    recorded[exercise_id] = answer
    return [
        Expected(ex.id, ex.points, recorded.get(ex.id))
        for ex in EXERCISES.values()
        if ex.chapter == chapter
    ]


def plan(notebook: NotebookNode, expected: list[Expected]) -> list[Step]:
    """The steps to run: student code, with each check cell replaced by the grader's check."""
    known = {e.id: e for e in expected if e.answer}
    steps: list[Step] = []
    checked: set[str] = set()
    answer_cells: dict[str, int] = {}
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        exercise_id = _called_exercise(cell)
        if exercise_id in known:
            if exercise_id not in checked:  # a duplicated check cell runs once
                checked.add(exercise_id)
                steps.append(Step(probe.source(exercise_id, known[exercise_id].answer), number,
                                  exercise_id))  # fmt: skip
            continue
        steps.append(Step(cell.source, number))
        owner, role = _role(cell)
        if role == "answer":
            answer_cells[owner] = len(steps)
    for exercise_id in [e for e in known if e not in checked]:  # check cell deleted
        position = answer_cells.get(exercise_id, len(steps))
        check = Step(probe.source(exercise_id, known[exercise_id].answer), 0, exercise_id)
        steps.insert(position, check)
        answer_cells = {k: v + (v >= position) for k, v in answer_cells.items()}
    return steps


def student_of(path: Path) -> str:
    """``submissions/alice/01-convolution.ipynb`` -> alice; ``alice.ipynb`` -> alice."""
    chapter_stems = {ex.chapter.split("/")[1] for ex in EXERCISES.values()}
    return path.parent.name if path.stem in chapter_stems else path.stem
