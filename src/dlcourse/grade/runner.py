"""Grade one submission: run its plan in a fresh kernel and record every exercise's outcome.

Nothing a submission does stops the grading of the others, or of its own other exercises: a
cell that times out or kills the kernel is reported, the kernel is restarted and the cells that
had run are run again (at most ``MAX_RESTARTS`` times), and a check whose answer is not defined
where the check cell stands is tried again at the end of the notebook.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import monotonic

from dlcourse.exercises import probe

from .kernel import Kernel
from .submission import (
    Expected,
    Step,
    UnreadableSubmission,
    chapter_of,
    expected_exercises,
    plan,
    read_notebook,
    student_of,
)

MAX_RESTARTS = 3


@dataclass
class Outcome:
    exercise: str
    points: int
    max_points: int
    status: str  # passed | wrong | not-done | missing | error | timeout | unreadable
    reason: str


@dataclass
class Graded:
    submission: str
    student: str
    chapter: str
    outcomes: list[Outcome] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what happened while running, for feedback
    seconds: float = 0.0

    @property
    def points(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_points(self) -> int:
        return sum(o.max_points for o in self.outcomes)


def _ungraded(expected: list[Expected], status: str, reason: str) -> list[Outcome]:
    return [Outcome(e.id, 0, e.points, status, reason) for e in expected]


class _Run:
    """The state of one submission's run: kernel, deadline, cells to replay after a restart."""

    def __init__(self, kernel: Kernel, cell_timeout: float, total_timeout: float, log: list[str]):
        self.kernel, self.cell_timeout, self.total_timeout = kernel, cell_timeout, total_timeout
        self.deadline = monotonic() + total_timeout
        self.completed: list[Step] = []
        self.restarts = 0
        self.log = log

    def remaining(self) -> float:
        return self.deadline - monotonic()

    def run(self, step: Step):
        limit = min(self.cell_timeout, self.remaining())
        return self.kernel.run(step.source, limit), limit

    def timeout_reason(self, limit: float) -> str:
        if limit < self.cell_timeout:
            return f"the submission used up its time budget ({self.total_timeout:g} s)"
        return f"it ran longer than {self.cell_timeout:g} s (an endless loop?)"

    def recover(self) -> bool:
        """Restart the kernel and re-run the cells that had completed; False if impossible."""
        self.restarts += 1
        if self.restarts > MAX_RESTARTS or self.remaining() <= 0:
            return False
        self.kernel.restart()
        for step in self.completed:
            run, _ = self.run(step)
            if run.status in ("timeout", "died"):
                self.log.append(f"cell {step.cell} did not finish when re-run after a restart")
                return False
        self.log.append(f"kernel restarted; {len(self.completed)} earlier cells were run again")
        return True


def _check_outcome(run, limit: float, state: _Run) -> dict[str, str]:
    if run.status == "timeout":
        return {"status": "timeout", "reason": f"the check stopped: {state.timeout_reason(limit)}"}
    if run.status == "died":
        return {"status": "error", "reason": "the kernel died while checking your answer "
                "(os._exit, a crash, or out of memory)"}  # fmt: skip
    if run.status == "error":
        return {"status": "error", "reason": f"the check could not run: {run.error}"}
    return probe.parse(run.stdout) or {"status": "error", "reason": "the check printed no result"}


def _run_plan(steps: list[Step], expected: list[Expected], state: _Run) -> dict[str, Outcome]:
    points = {e.id: e.points for e in expected}
    outcomes: dict[str, Outcome] = {}
    problem = ""  # the last failure in a student cell since the previous check
    retry_at_end: list[Step] = []
    stopped = ""
    for step in steps:
        if state.remaining() <= 0:
            stopped = f"the submission used up its time budget ({state.total_timeout:g} s)"
            break
        run, limit = state.run(step)
        if step.exercise is None:
            if run.status in ("ok", "error"):
                state.completed.append(step)
            if run.status == "error":
                problem = f"cell {step.cell} raised {run.error}"
            elif run.status == "timeout":
                problem = f"cell {step.cell} was stopped: {state.timeout_reason(limit)}"
            elif run.status == "died":
                problem = f"cell {step.cell} killed the kernel (os._exit, a crash, out of memory)"
            if run.status != "ok":
                state.log.append(problem)
            if run.status in ("timeout", "died") and not state.recover():
                stopped = f"the kernel could not be restored after {problem}"
                break
            continue
        result = _check_outcome(run, limit, state)
        reason = result["reason"]
        if step.cell == 0:
            reason = f"[check cell deleted; checked after your answer cell] {reason}"
        if result["status"] != "passed" and problem:
            reason += f" (before this check, {problem})"
        exercise = step.exercise
        outcomes[exercise] = Outcome(exercise, points[exercise] * (result["status"] == "passed"),
                                     points[exercise], result["status"], reason)  # fmt: skip
        if result["status"] == "missing":
            retry_at_end.append(step)
        problem = ""
        if run.status in ("timeout", "died") and not state.recover():
            stopped = "the kernel could not be restored after the check above"
            break
    if not stopped:
        for step in retry_at_end:
            run, limit = state.run(step)
            if _check_outcome(run, limit, state)["status"] == "passed":
                outcomes[step.exercise] = Outcome(
                    step.exercise, points[step.exercise], points[step.exercise], "passed",
                    "correct when checked at the end of the notebook; put the answer above its "
                    "check cell and run the cells in order",
                )  # fmt: skip
    for e in expected:
        if e.id not in outcomes:
            why = stopped or "its check cell is missing"
            outcomes[e.id] = Outcome(e.id, 0, e.points, "error", f"not graded: {why}")
    return outcomes


def grade_submission(
    path: Path,
    chapter: str | None = None,
    fallback_chapter: str | None = None,
    cell_timeout: float = 120.0,
    total_timeout: float = 600.0,
) -> Graded:
    """Grade one file. ``chapter`` overrides the notebook's; ``fallback_chapter`` is used when
    the file does not say (e.g. it is corrupt)."""
    started = monotonic()
    graded = Graded(str(path), student_of(path), chapter or fallback_chapter or "")
    try:
        notebook = read_notebook(path.read_bytes())
    except (OSError, UnreadableSubmission) as error:
        notebook, unreadable = None, f"unreadable submission: {error}"
    else:
        unreadable = ""
        graded.chapter = chapter or chapter_of(notebook) or fallback_chapter or ""
    if not graded.chapter:
        graded.outcomes = [Outcome("", 0, 0, "unreadable", unreadable or "no known exercises")]
        return graded
    try:
        expected = expected_exercises(graded.chapter, notebook)
    except UnreadableSubmission as error:
        graded.outcomes = [Outcome("", 0, 0, "unreadable", str(error))]
        return graded
    if unreadable:
        graded.outcomes = _ungraded(expected, "unreadable", unreadable)
        return graded
    unknown = [e for e in expected if e.answer is None]
    runnable = [e for e in expected if e.answer is not None]
    with tempfile.TemporaryDirectory(prefix="dlcourse-grade-") as workdir:
        with Kernel(Path(workdir)) as kernel:
            state = _Run(kernel, cell_timeout, total_timeout, graded.log)
            outcomes = _run_plan(plan(notebook, runnable), runnable, state)
    for e in unknown:
        outcomes[e.id] = Outcome(e.id, 0, e.points, "missing", "its check cell is gone and the "
                                 "notebook lost its metadata, so nothing says what to check")  # fmt: skip
    graded.outcomes = [outcomes[e.id] for e in expected]
    graded.seconds = round(monotonic() - started, 1)
    return graded


def main() -> None:
    """Worker entry point: ``python -m dlcourse.grade.runner JOB.json RESULT.json``."""
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    graded = grade_submission(Path(job.pop("path")), **job)
    Path(sys.argv[2]).write_text(json.dumps(asdict(graded)), encoding="utf-8")


if __name__ == "__main__":
    main()
