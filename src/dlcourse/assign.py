"""Student and instructor notebooks from one chapter source.

    python -m dlcourse.assign chapters/03-vision --out dist/

reads each chapter (a jupytext MyST file) and writes two ``.ipynb`` per chapter:

- ``dist/student/<part>/<chapter>.ipynb``: every solution removed, the starter code in its place,
  the check cells kept (a student who runs one on an unfinished exercise reads "not done yet");
- ``dist/instructor/<part>/<chapter>.ipynb``: an nbgrader source notebook. Each exercise has one
  answer cell whose solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
  (inside the starter's function when the starter is a function, so that ``nbgrader
  generate_assignment`` gives back the starter) and an autograder-test cell: the check, worth
  the exercise's points.

Both carry ``metadata["dlcourse"]`` (chapter, exercises, the expression each check receives) and
tag every answer and check cell with its exercise id; ``dlcourse.grade`` uses them to grade a
submission even when cells were deleted or moved. The exercise format in the chapter source is
documented in ``dlcourse.exercises``.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.chapters import chapter_files, chapter_id
from dlcourse.exercises import EXERCISES
from dlcourse.myst import Targets, chapter_targets, markdown_cells, to_markdown

__all__ = [
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "METADATA_KEY",
    "ChapterExercise",
    "ChapterFormatError",
    "directive_name",
    "instructor_notebook",
    "main",
    "parse_chapter",
    "statement_cell",
    "student_notebook",
    "write_assignments",
]

METADATA_KEY = "dlcourse"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
NBGRADER_SCHEMA = 3

_DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>exercise|solution-start|solution-end)\}"
                        r"(?P<argument>.*)$")  # fmt: skip


class ChapterFormatError(ValueError):
    """A chapter's exercise does not follow the format of ``dlcourse.exercises``."""


@dataclass
class ChapterExercise:
    """One exercise of a chapter: its statement and the cells that make it up."""

    id: str
    title: str
    statement: str
    starter: NotebookNode | None = None
    solution: list[NotebookNode] = field(default_factory=list)
    check: NotebookNode | None = None
    answer: str = ""

    @property
    def points(self) -> int:
        return EXERCISES[self.id].points if self.id in EXERCISES else 1


# ---------------------------------------------------------------------------------------------
# Reading a chapter


def _split_directives(cell: NotebookNode) -> list[tuple[str | None, str, NotebookNode]]:
    """Split a markdown cell into (directive name or None, argument, cell) pieces.

    Each ``{exercise}``, ``{solution-start}`` and ``{solution-end}`` block becomes its own piece;
    the text between them stays plain markdown. A cell without them is its own one piece.
    """
    lines = cell.source.split("\n")
    if not any(_DIRECTIVE.match(line) for line in lines):
        return [(None, "", cell)]
    pieces: list[tuple[str | None, str, NotebookNode]] = []
    plain: list[str] = []

    def flush_plain() -> None:
        text = "\n".join(plain).strip("\n")
        if text.strip():
            pieces.append((None, "", nbformat.v4.new_markdown_cell(text)))
        plain.clear()

    i = 0
    while i < len(lines):
        opener = _DIRECTIVE.match(lines[i])
        if not opener:
            plain.append(lines[i])
            i += 1
            continue
        flush_plain()
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == opener["fence"]), None
        )
        if end is None:
            raise ChapterFormatError(f"unclosed {{{opener['name']}}} directive: {lines[i]!r}")
        block = nbformat.v4.new_markdown_cell("\n".join(lines[i : end + 1]))
        pieces.append((opener["name"], opener["argument"].strip(), block))
        i = end + 1
    flush_plain()
    return pieces


def _exercise_statement(block: str) -> tuple[str, str, str]:
    """(label, title, body) of an ``{exercise}`` block."""
    lines = block.split("\n")
    title = _DIRECTIVE.match(lines[0])["argument"].strip()
    body = lines[1:-1]
    label = ""
    while body and body[0].startswith(":"):
        option = re.match(r":label:\s*(\S+)", body.pop(0))
        label = option[1] if option else label
    if not label:
        raise ChapterFormatError(f"exercise {title!r} has no :label:")
    return label, title, "\n".join(body).strip()


def _check_answer(source: str, exercise_id: str) -> str:
    """The expression passed to ``check("<id>", <expression>)`` in a check cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise ChapterFormatError(f"{exercise_id}: the check cell is not valid Python") from error
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "check"
        and len(node.args) == 2
        and isinstance(node.args[0], ast.Constant)
    ]
    if len(calls) != 1 or calls[0].args[0].value != exercise_id:
        raise ChapterFormatError(
            f'{exercise_id}: the check cell must call check("{exercise_id}", <answer>) once'
        )
    return ast.get_source_segment(source, calls[0].args[1])


def parse_chapter(path: str | Path) -> tuple[NotebookNode, list, list[ChapterExercise]]:
    """Read a chapter into (notebook, pieces, exercises).

    ``pieces`` is the list of cells with directives split out, as ``(kind, exercise, cell)``:
    kind is ``None`` for ordinary cells, or one of ``"exercise"``, ``"starter"``,
    ``"solution"`` (everything from ``{solution-start}`` to ``{solution-end}``), ``"check"``.
    Raises ``ChapterFormatError`` naming the exercise when the format is not followed.
    """
    import jupytext

    path = Path(path)
    notebook = jupytext.read(path)
    pieces: list[tuple[str | None, ChapterExercise | None, NotebookNode]] = []
    exercises: list[ChapterExercise] = []
    current: ChapterExercise | None = None
    in_solution = False

    def require(condition: bool, message: str) -> None:
        if not condition:
            raise ChapterFormatError(f"{path}: {message}")

    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        split = _split_directives(cell) if cell.cell_type == "markdown" else [(None, "", cell)]
        for directive, argument, piece in split:
            if directive == "exercise":
                require(not in_solution, "an exercise starts inside a solution")
                current = ChapterExercise(*_exercise_statement(piece.source))
                exercises.append(current)
                pieces.append(("exercise", current, piece))
            elif directive == "solution-start":
                require(current is not None and argument == current.id,
                        f"{{solution-start}} {argument} does not follow its exercise")  # fmt: skip
                require(current.starter is not None, f"{current.id}: no starter cell before "
                        "the solution (tag a code cell exercise-starter)")  # fmt: skip
                in_solution = True
                pieces.append(("solution", current, piece))
            elif directive == "solution-end":
                require(in_solution, "{solution-end} without {solution-start}")
                in_solution = False
                pieces.append(("solution", current, piece))
            elif in_solution:
                current.solution.append(piece)
                pieces.append(("solution", current, piece))
            elif "exercise-starter" in tags:
                require(current is not None and current.starter is None,
                        "a starter cell outside an exercise")  # fmt: skip
                current.starter = piece
                pieces.append(("starter", current, piece))
            elif "exercise-check" in tags:
                require(current is not None and current.solution,
                        "a check cell before its exercise's solution")  # fmt: skip
                current.check = piece
                current.answer = _check_answer(piece.source, current.id)
                pieces.append(("check", current, piece))
                current = None
            else:
                pieces.append((None, None, piece))
    for exercise in exercises:
        require(exercise.check is not None, f"{exercise.id} has no check cell")
    return notebook, pieces, exercises


# ---------------------------------------------------------------------------------------------
# Writing the notebooks


def directive_name(cell: NotebookNode) -> str | None:
    """``exercise``, ``solution-start`` or ``solution-end`` for a directive piece, else None."""
    first_line = cell.source.split("\n", 1)[0]
    opener = _DIRECTIVE.match(first_line) if cell.cell_type == "markdown" else None
    return opener["name"] if opener else None


def statement_cell(exercise: ChapterExercise, targets: Targets, position: int) -> NotebookNode:
    """The exercise at ``position`` as "### Exercise N: title", its statement in plain Markdown
    and the check that grades it."""
    number = targets.exercises[exercise.id]
    title = to_markdown(exercise.title, targets, position)
    statement = to_markdown(exercise.statement, targets, position)
    text = (
        f"### Exercise {number}: {title}\n\n{statement}\n\n"
        f'*Checked by `check("{exercise.id}", {exercise.answer})`; '
        f"{exercise.points} point{'s' * (exercise.points != 1)}.*"
    )
    return nbformat.v4.new_markdown_cell(text)


def _code_cell(source: str, exercise_id: str, role: str, nbgrader: dict | None = None):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata[METADATA_KEY] = {"exercise": exercise_id, "role": role}
    cell.metadata["tags"] = [f"exercise-{'starter' if role == 'answer' else role}"]
    if nbgrader is not None:
        cell.metadata["nbgrader"] = {"schema_version": NBGRADER_SCHEMA, "task": False, **nbgrader}
    return cell


def _is_stub(statement: ast.stmt) -> bool:
    """``raise NotImplementedError`` (with or without a call or a comment)."""
    if not isinstance(statement, ast.Raise) or statement.exc is None:
        return False
    exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
    return getattr(exc, "id", None) == "NotImplementedError"


def _is_placeholder(statement: ast.stmt) -> bool:
    """``name = ...`` (or a container holding ``...``): a value the student must give."""
    return isinstance(statement, ast.Assign) and any(
        isinstance(node, ast.Constant) and node.value is Ellipsis
        for node in ast.walk(statement.value)
    )


def _span(node: ast.stmt) -> tuple[int, int]:
    """0-based (first, end) line range of a statement, decorators included."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first - 1, node.end_lineno


def _function_body(lines: list[str], node: ast.FunctionDef) -> list[str]:
    """The lines of a function's body after its docstring, dedented."""
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    if not body:
        return ["pass"]
    start = _span(body[0])[0]
    return textwrap.dedent("\n".join(lines[start : node.end_lineno])).split("\n")


def _without_given_lines(given: list[str], solution_body: list[str]) -> list[str]:
    """The solution's body minus the leading lines that the starter already gives."""
    given = [line.split("#", 1)[0].strip() for line in given if line.strip()]
    body = list(solution_body)
    while body and given and body[0].split("#", 1)[0].strip() == given[0]:
        body.pop(0)
        given.pop(0)
    return body


def _region(lines: Sequence[str], indent: str) -> list[str]:
    inner = [indent + line if line.strip() else "" for line in lines]
    return [indent + BEGIN_SOLUTION, *inner, indent + END_SOLUTION]


def _instructor_answer(exercise: ChapterExercise, targets: Targets, position: int) -> str:
    """The starter with its holes filled by the solution, between nbgrader's markers.

    Statement by statement: the starter's given code stays; a ``name = ...`` placeholder goes
    (the solution defines the name); a stub function that the solution defines keeps its
    signature and docstring and gets the solution's body as a region, so that nbgrader gives
    the starter back to students; the rest of the solution is one region at the end. The
    solution's text comes first, as comments (the cell sits at ``position``).
    """
    notes = [
        f"# {line}".rstrip()
        for piece in exercise.solution
        if piece.cell_type == "markdown" and not directive_name(piece)
        for line in to_markdown(piece.source, targets, position).split("\n")
    ]
    code = "\n\n".join(p.source for p in exercise.solution if p.cell_type == "code")
    code_lines, starter_lines = code.split("\n"), exercise.starter.source.split("\n")
    solution_tree = ast.parse(code)
    solved = {
        n.name: n for n in solution_tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
    }
    result: list[str] = []
    merged: list[ast.stmt] = []
    previous_end = 0
    for node in ast.parse(exercise.starter.source).body:
        start, end = previous_end, _span(node)[1]
        lines = starter_lines[start:end]
        previous_end = end
        target = solved.get(getattr(node, "name", None))
        if _is_placeholder(node) or (isinstance(node, ast.ClassDef) and target is not None):
            continue
        if not (isinstance(node, ast.FunctionDef) and isinstance(target, ast.FunctionDef)
                and _is_stub(node.body[-1])):  # fmt: skip
            result += lines
            continue
        stub = node.body[-1]
        given = _function_body(starter_lines, node)[:-1]  # all but the stub's raise
        body = _without_given_lines(given, _function_body(code_lines, target))
        result += starter_lines[start : stub.lineno - 1]
        result += _region((notes if not merged else []) + body, " " * stub.col_offset)
        merged.append(target)
    dropped = {i for node in merged for i in range(*_span(node))}
    rest = "\n".join(line for i, line in enumerate(code_lines) if i not in dropped).strip()
    if rest:
        separator = [""] if result and result[-1].strip() else []
        result += separator + _region((notes if not merged else []) + rest.split("\n"), "")
    return "\n".join(result).strip("\n")


def _notebook_metadata(source: NotebookNode, chapter: str, variant: str, exercises) -> dict:
    return {
        "kernelspec": source.metadata.get("kernelspec", {}),
        "language_info": {"name": "python"},
        METADATA_KEY: {
            "chapter": chapter,
            "variant": variant,
            "exercises": [
                {"id": e.id, "title": e.title, "answer": e.answer, "points": e.points}
                for e in exercises
            ],
        },
    }


def _assemble(path: Path, variant: str) -> NotebookNode:
    source, pieces, exercises = parse_chapter(path)
    targets = chapter_targets(path, [cell for _, _, cell in pieces], [e.id for e in exercises])
    cells: list[NotebookNode] = []
    for position, (kind, exercise, cell) in enumerate(pieces):
        if kind is None and cell.cell_type == "markdown":
            cells += markdown_cells(cell, targets, position)
        elif kind is None:
            cells.append(cell)
        elif kind == "exercise":
            cells.append(statement_cell(exercise, targets, position))
        elif kind == "starter" and variant == "student":
            cells.append(_code_cell(cell.source, exercise.id, "answer"))
        elif kind == "starter":
            answer = _instructor_answer(exercise, targets, position)
            cells.append(_code_cell(answer, exercise.id, "answer",
                                    {"grade": False, "grade_id": exercise.id, "locked": False,
                                     "solution": True}))  # fmt: skip
        elif kind == "check":
            grading = {"grade": True, "grade_id": f"{exercise.id}-check", "locked": True,
                       "points": exercise.points, "solution": False}  # fmt: skip
            cells.append(_code_cell(cell.source, exercise.id, "check",
                                    grading if variant == "instructor" else None))  # fmt: skip
        # kind == "solution": left out; the instructor's answer cell already holds it
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number:03d}"  # stable ids: regenerating gives the same file
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = _notebook_metadata(source, chapter_id(path), variant, exercises)
    return notebook


def student_notebook(path: str | Path) -> NotebookNode:
    """The chapter with solutions removed, starters and checks kept."""
    return _assemble(Path(path), "student")


def instructor_notebook(path: str | Path) -> NotebookNode:
    """The chapter as an nbgrader source notebook (solutions between the markers)."""
    return _assemble(Path(path), "instructor")


def write_assignments(paths: Iterable[str | Path], out: str | Path) -> list[Path]:
    """Write ``out/student/...`` and ``out/instructor/...`` for each chapter; return the files."""
    written = []
    for path in chapter_files(paths):
        for variant, build in (("student", student_notebook), ("instructor", instructor_notebook)):
            target = Path(out) / variant / f"{chapter_id(path)}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(build(path), target)
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlcourse.assign",
        description="Write student and instructor notebooks for chapters, parts or the book.",
    )
    parser.add_argument("paths", nargs="*", default=["chapters"],
                        help="chapter files or folders (default: chapters)")  # fmt: skip
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    try:
        written = write_assignments(args.paths, args.out)
    except (ChapterFormatError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for target in written:
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
