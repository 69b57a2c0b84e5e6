"""The book's structure: table of contents, chapter format, and exercises wired to their checks."""

import re
from pathlib import Path

import jupytext
import pytest
import yaml

from dlcourse.assign import parse_chapter
from dlcourse.chapters import is_notebook_chapter
from dlcourse.colab import bootstrap_source, read_repository
from dlcourse.exercises import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
CHAPTERS = [c["file"] for part in TOC["parts"] for c in part["chapters"]]
# notebooks run and carry exercises; plain pages (instructors, glossary) are prose only
NOTEBOOKS = [c for c in CHAPTERS if is_notebook_chapter(ROOT / f"{c}.md")]


def _notebook(chapter: str):
    return jupytext.read(ROOT / f"{chapter}.md")


def test_toc_lists_every_chapter_file_once():
    on_disk = sorted(str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.glob("chapters/*/*.md"))
    assert sorted(CHAPTERS) == on_disk
    assert len(set(CHAPTERS)) == len(CHAPTERS)


def test_no_generated_notebooks_next_to_chapters():
    assert not list((ROOT / "chapters").rglob("*.ipynb"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_file_names_follow_the_curriculum(chapter):
    assert re.fullmatch(r"chapters/\d\d-[a-z]+/\d\d-[a-z0-9-]+", chapter)


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_first_code_cell_is_the_hidden_colab_bootstrap(chapter):
    """Rendered from _config.yml's repository; `python -m dlcourse.colab chapters --sync-bootstrap`."""
    first = next(c for c in _notebook(chapter).cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", [])
    assert first.source == bootstrap_source(read_repository(ROOT / "_config.yml"))


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_chapter_seeds_and_has_the_required_sections(chapter):
    text = (ROOT / f"{chapter}.md").read_text(encoding="utf-8")
    assert "seed_everything(" in text
    for heading in ("## Learning objectives", "## Common misconceptions", "## Exercises",
                    "## Review questions", "## Summary"):  # fmt: skip
        assert heading in text, f"{chapter} lacks {heading!r}"


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_every_exercise_has_a_starter_a_solution_and_a_registered_check(chapter):
    """The parser raises on a malformed exercise (starter, then solution, then check)."""
    exercises = parse_chapter(ROOT / f"{chapter}.md")[2]
    assert exercises, f"{chapter} has no exercises"
    part_and_file = chapter.removeprefix("chapters/")
    registered = sorted(e for e, ex in EXERCISES.items() if ex.chapter == part_and_file)
    assert sorted(e.id for e in exercises) == registered
    for exercise in exercises:
        assert exercise.check.source.strip() == f'check("{exercise.id}", {exercise.answer})'


def test_package_does_not_depend_on_torch_and_the_book_pins_it():
    """Colab ships its own torch; the book environment pins the CPU wheel exactly."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    assert not [d for d in declared if re.match(r"torch\b", d)]
    assert all(re.match(r"[\w-]+>=", d) for d in declared), "lower bounds only"
    pins = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==2\.13\.0\s", pins, re.M)
    assert re.search(r"^jupyter-book==1\.", pins, re.M)


def test_labels_and_figure_names_are_unique_across_the_book():
    """Sphinx fails the build on a duplicate label; this names both chapters at once."""
    seen: dict[str, str] = {}
    duplicates = []
    for chapter in CHAPTERS:
        text = (ROOT / f"{chapter}.md").read_text(encoding="utf-8")
        names = re.findall(r"^\(([\w-]+)\)=$", text, re.M)
        names += re.findall(r"^\s+name: (fig-[\w-]+)$", text, re.M)  # mystnb figure names
        names += re.findall(r"^:label: ([\w-]+)$", text, re.M)
        names += re.findall(r"^\$\$ \(([\w-]+)\)$", text, re.M)  # dollar-math equation labels
        for name in names:
            if name in seen and seen[name] != chapter:
                duplicates.append((name, seen[name], chapter))
            seen.setdefault(name, chapter)
    assert duplicates == []
