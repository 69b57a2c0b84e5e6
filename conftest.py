"""Let nbval run the MyST chapters directly, and hold every chapter to its runtime budget.

``pytest chapters --nbval-lax --nbval-current-env`` runs every code cell of every chapter in a
fresh kernel whose working directory is the chapter's folder (as in the book build); no
``.ipynb`` is written. nbval itself only collects ``*.ipynb``, so this reads the ``.md`` with
jupytext and reuses nbval's cell items.

While nbval runs, the wall time of each chapter (kernel start plus all its cells) is summed.
At the end the table ``chapter,seconds`` is written to ``$DLCOURSE_TIMINGS`` (default
``_build/chapter-times.csv``) and the run fails if a chapter took longer than
``$DLCOURSE_CHAPTER_BUDGET`` seconds (default 60).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

try:
    import jupytext
    from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

    from dlcourse.chapters import is_notebook_chapter
except ImportError:  # plain `pytest tests` works without the notebook toolchain
    IPyNbFile = None

ROOT = Path(__file__).parent
CHAPTER_BUDGET_S = float(os.environ.get("DLCOURSE_CHAPTER_BUDGET", "60"))
TIMINGS_FILE = Path(os.environ.get("DLCOURSE_TIMINGS", ROOT / "_build" / "chapter-times.csv"))


if IPyNbFile is not None:

    class JupytextNotebook(IPyNbFile):
        """An nbval notebook read from a jupytext text file."""

        def collect(self):
            self.nb = jupytext.read(self.path)
            code_cells = (c for c in self.nb.cells if c.cell_type == "code")
            for num, cell in enumerate(code_cells):
                options = defaultdict(bool, find_metadata_tags(cell.metadata))
                options.update(dict(find_comment_markers(cell.source)))
                options.setdefault("check", self.compare_outputs)
                yield IPyNbCell.from_parent(
                    self, name=f"Cell {num}", cell_num=num, cell=cell, options=options
                )


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    nbval_on = getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)
    if IPyNbFile is not None and nbval_on and is_notebook_chapter(file_path):
        return JupytextNotebook.from_parent(parent, path=file_path)
    return None


_chapter_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    """Sum setup (kernel start), call and teardown time per chapter (runs on the xdist controller)."""
    path = report.nodeid.split("::")[0]
    if path.endswith(".md") and "::Cell " in report.nodeid:
        _chapter_seconds[path] += report.duration


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput") or not _chapter_seconds:
        return  # an xdist worker, or no chapter ran
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(_chapter_seconds.items())
    TIMINGS_FILE.write_text(
        "chapter,seconds\n" + "".join(f"{c},{s:.1f}\n" for c, s in rows), encoding="utf-8"
    )
    over = [(c, s) for c, s in rows if s > CHAPTER_BUDGET_S]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("-", f"chapter wall times (budget {CHAPTER_BUDGET_S:.0f} s)")
        for chapter, seconds in rows:
            flag = "  OVER BUDGET" if seconds > CHAPTER_BUDGET_S else ""
            reporter.write_line(f"{seconds:7.1f} s  {chapter}{flag}")
        mean = sum(s for _, s in rows) / len(rows)
        reporter.write_line(f"{mean:7.1f} s  mean over {len(rows)} chapters -> {TIMINGS_FILE}")
    if over:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
