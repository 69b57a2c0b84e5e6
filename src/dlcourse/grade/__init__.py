"""Grade submitted notebooks offline: ``python -m dlcourse.grade SUBMISSIONS... --out grades.csv``.

Each submission (an ``.ipynb``, or a folder of them) runs in its own fresh kernel, in a
temporary working directory, with a time limit per cell and per submission; the file itself is
only read. In place of each check cell the grader runs the package's own check on the answer
(``dlcourse.exercises.probe``), so a student who edits a check cell changes nothing. The results:

- ``grades.csv``: one row per student and exercise: points, status (passed, wrong, not-done,
  missing, error, timeout, unreadable) and the reason, in the words a student can act on;
- ``feedback/<student>.md`` beside the CSV: the same, per student, with what went wrong while
  running the notebook (a cell that raised, a loop that was stopped, a restarted kernel).

The student is the file name (``alice.ipynb``) or, when the file is named after its chapter
(``alice/01-convolution.ipynb``), its folder. The chapter comes from the notebook's metadata
(written by ``dlcourse.assign``), else from the exercises it checks, else from ``--chapter``
or the other submissions. The grader guards against accidents, not against a student who sets
out to fool it: the references are in the package that the student's kernel imports.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .report import write_csv, write_feedback
from .runner import Graded, Outcome, grade_submission
from .submission import UnreadableSubmission, chapter_of, read_notebook, student_of

__all__ = ["Graded", "Outcome", "find_submissions", "grade_all", "grade_submission", "main"]


def find_submissions(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders searched for ``*.ipynb`` (checkpoints skipped)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def _majority_chapter(paths: list[Path]) -> str | None:
    chapters: Counter[str] = Counter()
    for path in paths:
        try:
            chapter = chapter_of(read_notebook(path.read_bytes()))
        except (OSError, UnreadableSubmission):
            continue
        if chapter:
            chapters[chapter] += 1
    return chapters.most_common(1)[0][0] if chapters else None


def _grade_in_worker(path: Path, job: dict, time_limit: float) -> Graded:
    """Grade one file in a child process, so that nothing in it can stop the others."""
    with tempfile.TemporaryDirectory(prefix="dlcourse-job-") as folder:
        job_file, result_file = Path(folder, "job.json"), Path(folder, "result.json")
        job_file.write_text(json.dumps({"path": str(path), **job}), encoding="utf-8")
        command = [sys.executable, "-m", "dlcourse.grade.runner", str(job_file), str(result_file)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)  # fmt: skip
        try:
            _, stderr = process.communicate(timeout=time_limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            stderr = b"the grader's worker was stopped at its time limit"
        if result_file.exists():
            data = json.loads(result_file.read_text(encoding="utf-8"))
            outcomes = [Outcome(**o) for o in data.pop("outcomes")]
            return Graded(**data, outcomes=outcomes)
    message = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
    graded = Graded(str(path), student_of(path), job.get("chapter") or "")
    graded.outcomes = [Outcome("", 0, 0, "error", f"the grader failed: {message[0]}")]
    return graded


def grade_all(
    paths: Sequence[str | Path],
    chapter: str | None = None,
    cell_timeout: float = 120.0,
    total_timeout: float = 600.0,
    jobs: int = 1,
    on_graded=None,
) -> list[Graded]:
    """Grade every submission (``jobs`` at a time); ``on_graded(graded)`` after each."""
    submissions = find_submissions(paths)
    job = {"chapter": chapter, "fallback_chapter": chapter or _majority_chapter(submissions),
           "cell_timeout": cell_timeout, "total_timeout": total_timeout}  # fmt: skip

    def grade(path: Path) -> Graded:
        graded = _grade_in_worker(path, job, total_timeout + 60)
        if on_graded:
            on_graded(graded)
        return graded

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(grade, submissions))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcourse.grade", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("submissions", nargs="+", help="notebooks, or folders of notebooks")
    parser.add_argument("--out", default="grades.csv", help="the CSV to write (grades.csv)")
    parser.add_argument("--feedback", help="folder for feedback files (feedback/ beside --out)")
    parser.add_argument("--chapter", help="grade as this chapter, e.g. 03-vision/01-convolution")
    parser.add_argument("--cell-timeout", type=float, default=120.0,
                        help="seconds a cell may run (120)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds a whole submission may run (600)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (1)")
    args = parser.parse_args(argv)

    def progress(graded: Graded) -> None:
        print(f"{graded.student}: {graded.points}/{graded.max_points} points "
              f"({graded.chapter or 'unknown chapter'}, {graded.seconds:.1f} s)", flush=True)  # fmt: skip

    try:
        results = grade_all(args.submissions, args.chapter, args.cell_timeout, args.timeout,
                            args.jobs, on_graded=progress)  # fmt: skip
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not results:
        print("error: no submissions found", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_csv(results, out)
    feedback = write_feedback(
        results, Path(args.feedback) if args.feedback else out.parent / "feedback"
    )
    print(f"wrote {out} and {len(feedback)} feedback files in {feedback[0].parent}")
    return 0
