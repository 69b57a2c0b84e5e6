"""Broken submissions of chapter 1.5, built from its solved (instructor) notebook.

Each case breaks one thing, the way students do; ``EXPECTED`` says which exercise must lose its
point and the words its reason must contain. Every other exercise must still pass.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import nbformat

CHAPTER = "01-foundations/05-backpropagation"
SCALAR, TWO_LAYER, LINEAR, LOGITS = (
    "ex-backprop-scalar-graph",
    "ex-backprop-two-layer",
    "ex-backprop-linear-vjp",
    "ex-backprop-logit-grad",
)


def _cell(notebook, exercise: str, role: str):
    return next(
        c
        for c in notebook.cells
        if c.metadata.get("dlcourse") == {"exercise": exercise, "role": role}
    )


def _edit(exercise: str, role: str, change: Callable[[str], str]):
    def mutate(notebook):
        cell = _cell(notebook, exercise, role)
        cell.source = change(cell.source)
        return notebook

    return mutate


def _before_return(statement: str) -> Callable[[str], str]:
    """Insert ``statement`` before the first ``return`` of the cell, at its indentation."""

    def change(source: str) -> str:
        lines = source.split("\n")
        i = next(i for i, line in enumerate(lines) if line.lstrip().startswith("return "))
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        return "\n".join(lines[:i] + [indent + statement] + lines[i:])

    return change


def _delete(exercise: str, role: str):
    def mutate(notebook):
        notebook.cells.remove(_cell(notebook, exercise, role))
        return notebook

    return mutate


def _move_check_above_answer(exercise: str):
    def mutate(notebook):
        check, answer = _cell(notebook, exercise, "check"), _cell(notebook, exercise, "answer")
        notebook.cells.remove(check)
        notebook.cells.insert(notebook.cells.index(answer), check)
        return notebook

    return mutate


def _tamper_check(notebook):
    """A wrong answer, and the check cell replaced by a fake success message."""
    _cell(notebook, LOGITS, "answer").source += "\nanswer = [0.0, 0.0, 0.0]"
    _cell(notebook, LOGITS, "check").source = 'print("correct!")'
    return notebook


NOTEBOOK_CASES: dict[str, Callable] = {
    "endless-loop-in-function": _edit(LINEAR, "answer", _before_return("while True: pass")),
    "endless-loop-in-cell": _edit(SCALAR, "answer", lambda s: "while True:\n    pass\n" + s),
    "exception": _edit(TWO_LAYER, "answer", _before_return("1 / 0")),
    "wrong-shape": _edit(
        LINEAR,
        "answer",
        lambda s: s.replace("return grad_x, grad_W, grad_b", "return grad_x, grad_W.T, grad_b"),
    ),  # fmt: skip
    "nan": _edit(TWO_LAYER, "answer", _before_return('grads["W1"] = grads["W1"] * float("nan")')),
    "syntax-error": _edit(SCALAR, "answer", lambda s: s + "\nanswer = (1, 2"),
    "kernel-crash": _edit(LINEAR, "answer", _before_return("import os; os._exit(1)")),
    "renamed-function": _edit(
        LINEAR, "answer", lambda s: s.replace("def linear_backward(", "def linear_bwd(")
    ),  # fmt: skip
    "deleted-answer-cell": _delete(LINEAR, "answer"),
    "deleted-check-cell": _delete(LOGITS, "check"),
    "reordered-cells": _move_check_above_answer(TWO_LAYER),
    "tampered-check-cell": _tamper_check,
}

FILE_CASES: dict[str, bytes] = {
    "corrupt-json": b'{"cells": [{"cell_type": "code", "source": "x = 1"',
    "empty-file": b"",
    "not-a-notebook": json.dumps({"name": "alice", "answers": [1, 2, 3]}).encode(),
    "binary-file": bytes(range(256)) * 4,
}

# case -> {exercise or "*" for all: (status, words in the reason)}; unlisted exercises pass
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "endless-loop-in-function": {LINEAR: ("timeout", "endless loop")},
    "endless-loop-in-cell": {SCALAR: ("missing", "was stopped")},
    "exception": {TWO_LAYER: ("wrong", "ZeroDivisionError")},
    "wrong-shape": {LINEAR: ("wrong", "wrong shape")},
    "nan": {TWO_LAYER: ("wrong", "NaN")},
    "syntax-error": {SCALAR: ("missing", "SyntaxError")},
    "kernel-crash": {LINEAR: ("error", "kernel died")},
    "renamed-function": {LINEAR: ("missing", "'linear_backward' is not defined")},
    "deleted-answer-cell": {LINEAR: ("missing", "'linear_backward' is not defined")},
    "deleted-check-cell": {LOGITS: ("passed", "check cell deleted")},
    "reordered-cells": {TWO_LAYER: ("passed", "checked at the end of the notebook")},
    "tampered-check-cell": {LOGITS: ("wrong", "dL/dz")},
    "corrupt-json": {"*": ("unreadable", "not valid JSON")},
    "empty-file": {"*": ("unreadable", "empty")},
    "not-a-notebook": {"*": ("unreadable", "not a Jupyter notebook")},
    "binary-file": {"*": ("unreadable", "not text")},
}


def write_broken_submissions(solved: Path, folder: Path) -> list[Path]:
    """Write every case as ``folder/<case>.ipynb``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(solved, as_version=4)
    contents = {
        name: nbformat.writes(mutate(copy.deepcopy(notebook))).encode()
        for name, mutate in NOTEBOOK_CASES.items()
    }
    paths = []
    for name, data in {**contents, **FILE_CASES}.items():
        path = folder / f"{name}.ipynb"
        path.write_bytes(data)
        paths.append(path)
    return paths
