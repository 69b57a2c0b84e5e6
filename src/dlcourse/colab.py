"""Clean ``.ipynb`` copies of the chapters, for Colab and for the website's download button.

Colab opens notebooks only, from a GitHub branch; the chapters are jupytext MyST files. So

    python -m dlcourse.colab chapters --out build/colab

writes ``build/colab/chapters/<part>/<chapter>.ipynb`` for every chapter (no outputs, the
kernelspec kept), which ``.ci/publish_colab`` commits to the branch the Colab buttons open. The
website build writes the same copies next to its pages (``dlcourse.website.notebook_links``).

The copies are the whole chapter, solutions included, in the Markdown that Jupyter and Colab
render (``dlcourse.myst``): each exercise is the "### Exercise N" cell of the student notebook
(``dlcourse.assign``), each solution starts with a "**Solution.**" cell; code cells are unchanged.

The first cell of every chapter is the *bootstrap*: hidden on the website, it installs
``dlcourse`` from the repository when, and only when, it runs on Colab and the package is
missing, so running it twice costs nothing. Its text is rendered here from the repository URL
and branch in ``_config.yml``, the one place they are set; ``--sync-bootstrap`` rewrites the
cell in every chapter after they change, and ``tests/test_book.py`` fails until it is run.
``DLCOURSE_SOURCE`` (a pip URL such as ``file:///path/to/checkout`` or a fork's
``git+https://…@branch``) replaces the repository for one session.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

from dlcourse.assign import directive_name, parse_chapter, statement_cell
from dlcourse.chapters import chapter_files
from dlcourse.myst import chapter_targets, markdown_cells

__all__ = [
    "Repository",
    "bootstrap_source",
    "is_bootstrap",
    "main",
    "notebook_copy",
    "read_repository",
    "sync_bootstrap",
    "write_notebooks",
]

BOOTSTRAP_MARK = "# Colab bootstrap"
_BOOTSTRAP = """\
# Colab bootstrap (hidden on the website): installs dlcourse on Colab, once.
import importlib
import importlib.util
import os
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("dlcourse") is None:
    source = os.environ.get("DLCOURSE_SOURCE", "git+{url}@{branch}")
    pip = [sys.executable, "-m", "pip", "install", "-q", f"dlcourse[data] @ {{source}}"]
    subprocess.run(pip, check=True)
    importlib.invalidate_caches()"""


@dataclass(frozen=True)
class Repository:
    """Where the course lives: ``url`` of the GitHub repository and its ``branch``."""

    url: str
    branch: str = "main"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", self.url):
            raise ValueError(
                f"repository url must look like https://github.com/<owner>/<name>, got {self.url!r}"
            )
        if not re.fullmatch(r"[\w./-]+", self.branch):
            raise ValueError(f"repository branch {self.branch!r} is not a plain branch name")


def read_repository(config: str | Path = "_config.yml") -> Repository:
    """The ``repository:`` section (``url``, ``branch``) of the book's ``_config.yml``."""
    import yaml  # the book toolchain's dependency; not needed to run a chapter

    section = yaml.safe_load(Path(config).read_text(encoding="utf-8")).get("repository") or {}
    if "url" not in section:
        raise ValueError(f"{config} has no repository: url: entry")
    return Repository(section["url"], section.get("branch", "main"))


def bootstrap_source(repository: Repository) -> str:
    """The bootstrap cell's code for ``repository``."""
    return _BOOTSTRAP.format(url=repository.url, branch=repository.branch)


def is_bootstrap(cell: NotebookNode) -> bool:
    """Whether ``cell`` is a chapter's Colab bootstrap cell."""
    return cell.cell_type == "code" and cell.source.startswith(BOOTSTRAP_MARK)


def _bootstrap_index(notebook: NotebookNode, path: Path) -> int:
    """The index of the bootstrap cell, which must be the first code cell."""
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    if not code or not is_bootstrap(notebook.cells[code[0]]):
        raise ValueError(f"{path}: the first code cell must be the Colab bootstrap")
    return code[0]


def _reader_cells(path: Path, pieces: list, exercises: list) -> list[NotebookNode]:
    """The chapter's cells for a reader: markdown converted, exercises as statement cells."""
    targets = chapter_targets(path, [cell for _, _, cell in pieces], [e.id for e in exercises])
    cells: list[NotebookNode] = []
    for position, (kind, exercise, cell) in enumerate(pieces):
        directive = directive_name(cell)
        if kind == "exercise":
            cells.append(statement_cell(exercise, targets, position))
        elif directive == "solution-start":
            cells.append(nbformat.v4.new_markdown_cell("**Solution.**"))
        elif cell.cell_type == "markdown" and directive != "solution-end":
            cells += markdown_cells(cell, targets, position)
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cells.append(cell)
    return cells


def notebook_copy(path: str | Path, repository: Repository) -> NotebookNode:
    """Chapter ``path`` as a clean notebook: no outputs, the bootstrap rendered for ``repository``.

    Code cells, tags and the kernelspec stay as they are; markdown becomes what Colab renders;
    jupytext's own metadata goes; cell ids are stable (``cell-000``, ...).
    """
    path = Path(path)
    notebook, pieces, exercises = parse_chapter(path)
    notebook.cells[_bootstrap_index(notebook, path)].source = bootstrap_source(repository)
    notebook.cells = _reader_cells(path, pieces, exercises)
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number:03d}"
    notebook.metadata.pop("jupytext", None)
    nbformat.validate(notebook)
    return notebook


def write_notebooks(
    paths: Iterable[str | Path], out: str | Path, repository: Repository, root: str | Path = "."
) -> list[Path]:
    """Write ``notebook_copy`` of every chapter under ``paths`` to ``out``/<its path>.ipynb."""
    root, written = Path(root).resolve(), []
    for chapter in chapter_files(paths):
        target = Path(out) / chapter.resolve().relative_to(root).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook_copy(chapter, repository), target)
        written.append(target)
    return written


def sync_bootstrap(paths: Iterable[str | Path], repository: Repository) -> list[Path]:
    """Rewrite the bootstrap cell of every notebook chapter whose text differs; returns those."""
    changed = []
    for chapter in chapter_files(paths):
        text = chapter.read_text(encoding="utf-8")
        notebook = jupytext.reads(text, fmt="md:myst")
        cell = notebook.cells[_bootstrap_index(notebook, chapter)]
        wanted = bootstrap_source(repository)
        if cell.source != wanted:
            chapter.write_text(text.replace(cell.source, wanted, 1), encoding="utf-8")
            changed.append(chapter)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlcourse.colab", description=__doc__.split("\n")[0]
    )
    parser.add_argument("paths", nargs="+", help="chapter files or folders (e.g. chapters)")
    parser.add_argument("--out", type=Path, help="folder for the .ipynb copies")
    parser.add_argument("--config", default="_config.yml", help="the book's _config.yml")
    parser.add_argument(
        "--sync-bootstrap", action="store_true", help="rewrite each chapter's bootstrap cell"
    )
    args = parser.parse_args(argv)
    if not args.out and not args.sync_bootstrap:
        parser.error("give --out DIR, --sync-bootstrap, or both")
    repository = read_repository(args.config)
    root = Path(args.config).resolve().parent
    if args.sync_bootstrap:
        for chapter in sync_bootstrap(args.paths, repository):
            print(f"bootstrap updated: {chapter}")
    if args.out:
        written = write_notebooks(args.paths, args.out, repository, root)
        print(f"{len(written)} notebooks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
