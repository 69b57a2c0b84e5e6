"""The code the grader runs inside a student's kernel, in place of each check cell.

It evaluates the answer expression of the chapter's check cell, runs the package's check on it
and prints one line, ``MARKER`` followed by JSON ``{"status", "reason"}``, which the grader
reads from the cell's output. Whatever the student's code does, the outcome is one of the
statuses below, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .core import NotDoneError, WrongAnswerError, check

MARKER = "__dlcourse_grade__ "


def evaluate(exercise_id: str, get_answer: Callable[[], Any]) -> dict[str, str]:
    """Status (passed, wrong, not-done, missing, error) and reason for one exercise."""
    try:
        answer = get_answer()
    except NameError as error:
        return {"status": "missing", "reason": f"{error} when the check runs (is its cell deleted, "
                "renamed, below the check, or did it fail?)"}  # fmt: skip
    except Exception as error:  # the student's code, reported as a reason
        return {"status": "error", "reason": f"computing the answer raised {_describe(error)}"}
    try:
        result = check(exercise_id, answer)
    except NotDoneError as error:
        return {"status": "not-done", "reason": str(error)}
    except WrongAnswerError as error:
        return {"status": "wrong", "reason": str(error)}
    except AssertionError as error:
        return {"status": "wrong", "reason": str(error) or "an assertion failed"}
    except Exception as error:
        return {"status": "error", "reason": f"the check failed on your answer: {_describe(error)}"}
    return {"status": "passed", "reason": result.note or "correct"}


def report(exercise_id: str, get_answer: Callable[[], Any]) -> None:
    """Print the outcome of ``evaluate`` on one marked line."""
    print(MARKER + json.dumps(evaluate(exercise_id, get_answer)))


def source(exercise_id: str, answer: str) -> str:
    """The cell that replaces a check cell: ``report`` on the chapter's answer expression."""
    return (
        "from dlcourse.exercises.probe import report as _dlcourse_report\n"
        f"_dlcourse_report({exercise_id!r}, lambda: ({answer}))"
    )


def parse(stdout: str) -> dict[str, str] | None:
    """The outcome printed by ``report``, or None if the cell printed none."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    return json.loads(lines[-1][len(MARKER) :]) if lines else None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
