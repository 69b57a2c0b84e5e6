"""The book's chapter files: which are notebooks, and how they are named.

Light on purpose (no torch): the website build, the Colab publisher and pytest's collector use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["chapter_files", "chapter_id", "is_notebook_chapter"]


def chapter_id(path: Path) -> str:
    """``chapters/03-vision/01-convolution.md`` -> ``03-vision/01-convolution``."""
    return f"{path.parent.name}/{path.stem}"


def is_notebook_chapter(path: Path) -> bool:
    """A jupytext notebook (front matter with jupytext and a kernel), not a plain page."""
    if path.suffix != ".md" or not path.is_file():
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return "jupytext:" in head and "kernelspec:" in head


def chapter_files(paths: Iterable[str | Path]) -> list[Path]:
    """The notebook chapters named by ``paths``: files, part folders or the chapters folder."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.md") if is_notebook_chapter(p))
        elif is_notebook_chapter(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: not a notebook chapter (.md) or a folder of them")
    if not found:
        raise FileNotFoundError(f"no chapter files in {', '.join(map(str, paths))}")
    return found
