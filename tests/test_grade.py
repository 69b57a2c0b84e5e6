"""The grader: unit tests of its parts, then whole runs on real and broken submissions."""

import csv
import hashlib
import shutil
from pathlib import Path

import nbformat
import pytest
from broken_submissions import CHAPTER, EXPECTED, write_broken_submissions

from dlcourse.assign import write_assignments
from dlcourse.exercises import EXERCISES, probe
from dlcourse.grade import find_submissions, main
from dlcourse.grade.kernel import CellRun
from dlcourse.grade.report import feedback_text
from dlcourse.grade.runner import Graded, Outcome, _Run, _run_plan
from dlcourse.grade.submission import (
    Expected,
    Step,
    UnreadableSubmission,
    chapter_of,
    plan,
    read_notebook,
    student_of,
)

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Parts


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"\xff\xfe\x00garbage", "not text"),
        (b'{"cells": [', "not valid JSON"),
        (b"[1, 2, 3]", "not a Jupyter notebook"),
        (b'{"cells": [{"cell_type": "picture", "source": ""}]}', "unknown cell type"),
    ],
)
def test_unreadable_files_get_a_reason(data, reason):
    with pytest.raises(UnreadableSubmission, match=reason):
        read_notebook(data)


def test_old_style_sources_as_line_lists_are_read():
    data = b'{"cells": [{"cell_type": "code", "source": ["x = 1\\n", "y = 2"], "metadata": {}}]}'
    assert read_notebook(data).cells[0].source == "x = 1\ny = 2"


def _cell(source, exercise=None, role=None):
    cell = nbformat.v4.new_code_cell(source)
    if exercise:
        cell.metadata["dlcourse"] = {"exercise": exercise, "role": role}
    return cell


def test_plan_replaces_check_cells_and_places_a_deleted_check_after_its_answer():
    notebook = nbformat.v4.new_notebook(cells=[
        _cell("import torch"),
        _cell("steps = 50_000", "ex-start-budget", "answer"),
        _cell("print('my own check')", "ex-start-budget", "check"),
        _cell("def draw(seed): ...", "ex-start-reproduce", "answer"),
        _cell("tags = ['remove-cell']"),
    ])  # fmt: skip
    expected = [Expected("ex-start-budget", 1, "steps"), Expected("ex-start-reproduce", 1, "draw")]
    steps = plan(notebook, expected)
    assert [(s.cell, s.exercise) for s in steps] == [
        (1, None), (2, None), (3, "ex-start-budget"), (4, None), (0, "ex-start-reproduce"),
        (5, None),
    ]  # fmt: skip
    assert "my own check" not in steps[2].source and "lambda: (steps)" in steps[2].source


def test_chapter_is_found_from_the_checks_when_metadata_is_lost():
    notebook = nbformat.v4.new_notebook(cells=[_cell('check("ex-conv-params", counts)')])
    assert chapter_of(notebook) == "03-vision/01-convolution"


def test_student_is_the_folder_when_the_file_is_named_after_its_chapter():
    assert student_of(Path("subs/alice/01-convolution.ipynb")) == "alice"
    assert student_of(Path("subs/bob.ipynb")) == "bob"


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (lambda: 50_000, "passed"),
        (lambda: 49_000, "wrong"),
        (lambda: ..., "not-done"),
        (lambda: undefined_name, "missing"),  # noqa: F821
        (lambda: 1 / 0, "error"),
    ],
)
def test_probe_turns_every_answer_into_a_status(answer, status):
    assert probe.evaluate("ex-start-budget", answer)["status"] == status


def test_probe_output_round_trips():
    line = probe.MARKER + '{"status": "passed", "reason": "correct"}'
    assert probe.parse(f"student output\n{line}\n") == {"status": "passed", "reason": "correct"}
    assert probe.parse("no marker") is None


def test_feedback_lists_every_exercise_and_what_went_wrong():
    graded = Graded("a.ipynb", "alice", CHAPTER, [Outcome("ex-1", 0, 1, "timeout", "too slow")],
                    ["cell 3 raised NameError"])  # fmt: skip
    text = feedback_text("alice", [graded])
    assert "0 / 1 points" in text and "too slow" in text and "cell 3 raised NameError" in text


def test_missing_submission_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        find_submissions([tmp_path / "nope.ipynb"])
    assert main([str(tmp_path), "--out", str(tmp_path / "g.csv")]) == 2  # an empty folder


# ---------------------------------------------------------------------------------------------
# The run loop, with a scripted stand-in for the kernel


class ScriptedKernel:
    """Answers each source with a scripted ``CellRun`` (a list gives one per run)."""

    def __init__(self, script):
        self.script, self.ran, self.restarts = script, [], 0

    def run(self, source, timeout):
        self.ran.append(source)
        value = self.script.get(source, CellRun("ok"))
        return value.pop(0) if isinstance(value, list) else value

    def restart(self):
        self.restarts += 1


PASSED = CellRun("ok", probe.MARKER + '{"status": "passed", "reason": "correct"}\n')
MISSING = CellRun("ok", probe.MARKER + '{"status": "missing", "reason": "x is not defined"}\n')
EXPECTED_TWO = [Expected("ex-a", 1, "a"), Expected("ex-b", 2, "b")]


def _steps(*sources):
    return [Step(probe.source(s[6:], s[6:]) if s.startswith("check ") else s, i + 1,
                 s[6:] if s.startswith("check ") else None) for i, s in enumerate(sources)]  # fmt: skip


def _run(script, steps, total=100.0):
    kernel = ScriptedKernel(script)
    state = _Run(kernel, cell_timeout=10, total_timeout=total, log=[])
    return _run_plan(steps, EXPECTED_TWO, state), kernel, state.log


def test_a_cell_that_hangs_is_stopped_and_the_earlier_cells_are_run_again():
    steps = _steps("setup", "loop", "check ex-a", "check ex-b")
    script = {"loop": CellRun("timeout"), steps[2].source: PASSED, steps[3].source: PASSED}
    outcomes, kernel, log = _run(script, steps)
    assert kernel.restarts == 1 and kernel.ran.count("setup") == 2 and kernel.ran.count("loop") == 1
    assert [o.points for o in outcomes.values()] == [1, 2]
    assert "kernel restarted; 1 earlier cells were run again" in log


def test_a_kernel_that_keeps_dying_stops_the_grading_with_a_reason():
    steps = _steps("setup", "crash", "crash", "crash", "crash", "check ex-a", "check ex-b")
    outcomes, kernel, _ = _run({"crash": CellRun("died")}, steps)
    assert kernel.restarts == 3
    assert all(o.status == "error" and "could not be restored" in o.reason
               for o in outcomes.values())  # fmt: skip


def test_a_submission_over_its_total_budget_is_not_graded_further():
    outcomes, kernel, _ = _run({}, _steps("setup", "check ex-a", "check ex-b"), total=0)
    assert not kernel.ran
    assert all("time budget" in o.reason and o.points == 0 for o in outcomes.values())


def test_an_answer_defined_below_its_check_is_found_at_the_end():
    steps = _steps("check ex-a", "define a", "check ex-b")
    script = {steps[0].source: [MISSING, PASSED], steps[2].source: PASSED}
    outcomes, _, _ = _run(script, steps)
    assert outcomes["ex-a"].status == "passed" and "end of the notebook" in outcomes["ex-a"].reason


# ---------------------------------------------------------------------------------------------
# Whole runs (fresh kernels; about a minute on two cores)


@pytest.fixture(scope="module")
def graded_run(tmp_path_factory):
    """Grade every chapter's student notebook, one solved notebook and the broken set."""
    root = tmp_path_factory.mktemp("grading")
    write_assignments([ROOT / "chapters"], root / "dist")
    submissions = root / "submissions"
    shutil.copytree(root / "dist" / "student", submissions / "students")
    solved = root / "dist" / "instructor" / f"{CHAPTER}.ipynb"
    (submissions / "solved").mkdir()
    shutil.copy(solved, submissions / "solved" / "alice.ipynb")
    broken = write_broken_submissions(solved, submissions / "broken")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in broken}
    out = root / "out" / "grades.csv"
    code = main([str(submissions), "--out", str(out), "--jobs", "2", "--cell-timeout", "15",
                 "--timeout", "300"])  # fmt: skip
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    return {"code": code, "rows": rows, "out": out, "before": before}


def _rows(graded_run, student):
    return {r["exercise"]: r for r in graded_run["rows"] if r["student"] == student}


def test_grader_exits_cleanly_and_never_modifies_a_submission(graded_run):
    assert graded_run["code"] == 0
    for path, digest in graded_run["before"].items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path


def test_student_notebooks_get_zero_and_not_done_everywhere(graded_run):
    rows = [r for r in graded_run["rows"] if "/students/" in r["submission"]]
    assert {r["exercise"] for r in rows} == set(EXERCISES)
    for row in rows:
        assert (row["status"], row["points"]) == ("not-done", "0"), row
        assert "not done yet" in row["reason"]


def test_solved_notebook_gets_full_marks(graded_run):
    rows = _rows(graded_run, "alice")
    assert len(rows) == 4 and all(r["status"] == "passed" for r in rows.values()), rows
    assert sum(int(r["points"]) for r in rows.values()) == 4


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_broken_submission_loses_only_the_broken_exercise(graded_run, case):
    rows = _rows(graded_run, case)
    chapter_exercises = {e for e, ex in EXERCISES.items() if ex.chapter == CHAPTER}
    assert set(rows) == chapter_exercises, rows
    for exercise, row in rows.items():
        status, words = EXPECTED[case].get(exercise, EXPECTED[case].get("*", ("passed", "")))
        assert row["status"] == status, (exercise, row)
        assert words in row["reason"], (exercise, row["reason"])
        assert int(row["points"]) == (status == "passed"), row


def test_feedback_file_per_student_beside_the_csv(graded_run):
    folder = graded_run["out"].parent / "feedback"
    names = {p.stem for p in folder.glob("*.md")}
    assert {"alice", "endless-loop-in-function", "corrupt-json"} <= names
    text = (folder / "kernel-crash.md").read_text(encoding="utf-8")
    assert "kernel restarted" in text and "3 / 4 points" in text
