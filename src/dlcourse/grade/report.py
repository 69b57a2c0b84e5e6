"""The grader's outputs: one CSV row per student and exercise, one feedback file per student."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from .runner import Graded

COLUMNS = ("student", "chapter", "exercise", "points", "max_points", "status", "reason",
           "submission")  # fmt: skip


def write_csv(results: list[Graded], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for graded in results:
            for o in graded.outcomes:
                writer.writerow((graded.student, graded.chapter, o.exercise, o.points,
                                 o.max_points, o.status, o.reason, graded.submission))  # fmt: skip


def _file_name(student: str) -> str:
    return re.sub(r"[^\w.-]+", "_", student).strip("._") or "student"


def feedback_text(student: str, results: list[Graded]) -> str:
    """A Markdown report for one student: a line per exercise, what went wrong while running."""
    lines = [f"# Feedback for {student}", ""]
    for graded in results:
        lines += [f"## {graded.chapter or 'unknown chapter'}: {graded.points} / "
                  f"{graded.max_points} points", "", f"Submission: `{graded.submission}`", ""]  # fmt: skip
        for o in graded.outcomes:
            mark = "passed" if o.status == "passed" else o.status
            lines.append(f"- **{o.exercise or 'notebook'}** ({mark}, {o.points}/{o.max_points}): "
                         f"{o.reason}")  # fmt: skip
        if graded.log:
            lines += ["", "While running your notebook:", ""]
            lines += [f"- {entry}" for entry in graded.log]
        lines.append("")
    return "\n".join(lines)


def write_feedback(results: list[Graded], folder: Path) -> list[Path]:
    """``folder/<student>.md`` for each student (all of their submissions in one file)."""
    by_student: dict[str, list[Graded]] = defaultdict(list)
    for graded in results:
        by_student[graded.student].append(graded)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student, graded in sorted(by_student.items()):
        path = folder / f"{_file_name(student)}.md"
        path.write_text(feedback_text(student, graded), encoding="utf-8")
        written.append(path)
    return written
