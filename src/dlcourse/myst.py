"""MyST markup as the Markdown that Jupyter and Colab render.

The chapters are written for Sphinx: label lines ``(label)=``, roles such as ``{term}`…` ``,
labelled display math ``$$ … $$ (label)`` and admonition fences. A notebook shows all of them as
raw text, so the generated notebooks (``dlcourse.colab``, ``dlcourse.assign``) pass every
markdown cell through ``to_markdown``, which resolves each reference against the chapter's
``Targets``:

- a label line disappears;
- ``{term}`text <entry>` `` and ``{term}`text` `` give the text (no glossary link); ``{math}`x` ``
  gives ``$x$``;
- ``{ref}`` and ``{doc}`` give the heading's title (``book_titles``), or the explicit text of
  ``{ref}`text <label>` ``; a ``{ref}`` or ``{exercise}`` to an exercise gives "Exercise N";
- the labelled display equations of a chapter are numbered 1, 2, … in order: each one gets
  ``\\tag{n}`` and ``{eq}`label` `` gives ``(n)``;
- ``{numref}`` to a figure of the chapter gives "the figure above" or "the figure below", from the
  position of the figure's code cell relative to the referring cell (``%s`` in an explicit text
  is replaced the same way);
- an admonition (``{admonition}`` with its title, ``{note}``, ``{warning}``, …, with ``:::`` or
  backtick fences, options dropped) becomes a blockquote headed by its title in bold; any other
  directive keeps only its content (without its argument and options).

A label that is not found stays as its text. Code spans and fenced code blocks are left as they
are.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.chapters import chapter_id

__all__ = [
    "ADMONITIONS",
    "Targets",
    "book_titles",
    "chapter_targets",
    "markdown_cells",
    "to_markdown",
]

ADMONITIONS = {
    "admonition": "Note", "attention": "Attention", "caution": "Caution", "danger": "Danger",
    "error": "Error", "hint": "Hint", "important": "Important", "note": "Note",
    "seealso": "See also", "tip": "Tip", "warning": "Warning",
}  # fmt: skip

_LABEL_LINE = re.compile(r"^\s*\([^()\s]+\)=\s*$")
_FENCE = re.compile(
    r"^\s*(?P<fence>`{3,}|~{3,}|:{3,})(?:\{(?P<name>[\w:-]+)\})?\s*(?P<argument>.*)$"
)
_OPTION = re.compile(r"^\s*:[\w-]+:")
_DISPLAY_MATH = re.compile(
    r"\$\$(?P<body>(?:(?!\$\$).)*)\$\$(?:[ \t]*\((?P<label>[^()\s]+)\)[ \t]*$)?", re.S | re.M
)
_ROLE_OR_CODE = re.compile(
    r"\{(?P<role>[\w:-]+)\}`(?P<content>[^`]*)`|(?P<ticks>`+).*?(?P=ticks)", re.S
)
_EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
_NUMBER = re.compile(r"(?:(?:Fig\.?|Figure)\s*)?(?:%s|\{number\})")
_SENTENCE_START = re.compile(r"(?:\A|[.!?]\s|\n\s*\n)\s*\Z")
_LABELLED_HEADING = re.compile(r"^\((?P<label>[^()\s]+)\)=[ \t]*\n#+[ \t]+(?P<title>.+?)[ \t]*$",
                               re.M)  # fmt: skip
_TITLE = re.compile(r"^#[ \t]+(?P<title>.+?)[ \t]*$", re.M)


@dataclass(frozen=True)
class Targets:
    """What the references of one chapter point to.

    ``titles``: heading labels and document ids (``part/file``) -> title; ``equations``: label ->
    number; ``exercises``: label -> number; ``figures``: name -> index of the figure's cell.
    ``chapter`` (``part/file``) resolves relative ``{doc}`` paths.
    """

    chapter: str = ""
    titles: Mapping[str, str] = field(default_factory=dict)
    equations: Mapping[str, int] = field(default_factory=dict)
    exercises: Mapping[str, int] = field(default_factory=dict)
    figures: Mapping[str, int] = field(default_factory=dict)


def _without_code_blocks(text: str) -> str:
    """``text`` without its backtick-fenced blocks (code cells and code examples)."""
    return re.sub(r"^(`{3,}).*?^\1\s*$", "", text, flags=re.M | re.S)


def book_titles(folder: str | Path) -> dict[str, str]:
    """Titles of the pages ``folder/<part>/<file>.md``: by each ``(label)=`` heading and by page id."""
    titles: dict[str, str] = {}
    for page in sorted(Path(folder).glob("*/*.md")):
        text = _without_code_blocks(page.read_text(encoding="utf-8"))
        titles.update((m["label"], m["title"]) for m in _LABELLED_HEADING.finditer(text))
        if first := _TITLE.search(text):
            titles[chapter_id(page)] = first["title"]
    return titles


def chapter_targets(
    path: str | Path, cells: Sequence[NotebookNode], exercise_ids: Sequence[str]
) -> Targets:
    """The ``Targets`` of chapter ``path`` whose cells, in order, are ``cells``.

    Titles come from every page of the book (the folder above the chapter's part).
    """
    path = Path(path)
    equations: dict[str, int] = {}
    figures: dict[str, int] = {}
    for position, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            for match in _DISPLAY_MATH.finditer(cell.source):
                if match["label"] and match["label"] not in equations:
                    equations[match["label"]] = len(equations) + 1
        elif name := cell.metadata.get("mystnb", {}).get("figure", {}).get("name"):
            figures[name] = position
    return Targets(
        chapter=chapter_id(path),
        titles=book_titles(path.parent.parent),
        equations=equations,
        exercises={label: number for number, label in enumerate(exercise_ids, start=1)},
        figures=figures,
    )


def to_markdown(text: str, targets: Targets | None = None, position: int = 0) -> str:
    """MyST ``text`` of the cell at ``position`` of a chapter as plain Markdown."""
    lines = _blocks(text.split("\n"), targets or Targets(), position)
    return "\n".join(lines).strip("\n")


def markdown_cells(cell: NotebookNode, targets: Targets, position: int) -> list[NotebookNode]:
    """The markdown ``cell`` at ``position`` converted; no cell when nothing is left of it."""
    text = to_markdown(cell.source, targets, position)
    return [nbformat.v4.new_markdown_cell(text, metadata=cell.metadata)] if text.strip() else []


def _closing(lines: Sequence[str], start: int, fence: str) -> int:
    """Index of the line closing the fence opened at ``start`` (the end when it is never closed)."""
    return next((i for i in range(start + 1, len(lines)) if lines[i].strip() == fence), len(lines))


def _blocks(lines: Sequence[str], targets: Targets, position: int) -> list[str]:
    """Label lines dropped, directives rewritten, code blocks kept, prose through ``_prose``."""
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        opener = _FENCE.match(lines[i])
        if opener is None:
            if not _LABEL_LINE.match(lines[i]):
                prose.append(lines[i])
            i += 1
            continue
        out += _prose("\n".join(prose), targets, position).split("\n") if prose else []
        prose.clear()
        end = _closing(lines, i, opener["fence"])
        if opener["name"] is None:
            out += lines[i : end + 1]
        else:
            body = lines[i + 1 : end]
            out += _directive(opener["name"], opener["argument"].strip(), body, targets, position)
        i = end + 1
    out += _prose("\n".join(prose), targets, position).split("\n") if prose else []
    return out


def _directive(
    name: str, argument: str, body: Sequence[str], targets: Targets, position: int
) -> list[str]:
    """An admonition as a blockquote with its title in bold; another directive as its content."""
    body = list(body)
    while body and _OPTION.match(body[0]):
        body.pop(0)
    if name not in ADMONITIONS:
        return _blocks(body, targets, position)
    title = argument if name == "admonition" and argument else ADMONITIONS[name]
    if name != "admonition" and argument:
        body.insert(0, argument)
    content = "\n".join(_blocks(body, targets, position)).strip("\n")
    quoted = [f"> {line}" if line.strip() else ">" for line in content.split("\n")]
    return [f"> **{_prose(title, targets, position)}**"] + ([">", *quoted] if content else [])


def _prose(text: str, targets: Targets, position: int) -> str:
    """Equation labels as ``\\tag``, then every role resolved (code spans left alone)."""
    text = _DISPLAY_MATH.sub(lambda match: _tagged(match, targets), text)
    return _ROLE_OR_CODE.sub(lambda match: _resolved(match, targets, position), text)


def _tagged(match: re.Match, targets: Targets) -> str:
    """Labelled display math with its number as ``\\tag`` (without a tag when unknown)."""
    body, label = match["body"], match["label"]
    if label is None or label not in targets.equations:
        return f"$${body}$$"
    formula = body.rstrip()
    return f"$${formula} \\tag{{{targets.equations[label]}}}{body[len(formula) :]}$$"


def _resolved(match: re.Match, targets: Targets, position: int) -> str:
    """One role as text; a code span unchanged."""
    if match["role"] is None:
        return match[0]
    role, content = match["role"], match["content"]
    explicit = _EXPLICIT.match(content)
    text, label = (explicit["text"], explicit["target"]) if explicit else (None, content)
    if role == "math":
        return f"${content}$"
    if role == "numref":
        resolved = _figure(label, text, targets, position)
        at_start = _SENTENCE_START.search(match.string, 0, match.start())
        return resolved[:1].upper() + resolved[1:] if at_start else resolved
    if text is not None:
        return text
    if role == "eq":
        return f"({targets.equations[label]})" if label in targets.equations else label
    if role == "doc":
        return targets.titles.get(_document_id(label, targets.chapter), label)
    if role in ("ref", "exercise"):
        if label in targets.exercises:
            return f"Exercise {targets.exercises[label]}"
        return targets.titles.get(label, label)
    return label


def _figure(label: str, text: str | None, targets: Targets, position: int) -> str:
    """Where the figure is from the cell at ``position``, "the figure above" or "the figure
    below"; with an explicit ``text``, that text with its ``%s`` ("Fig. %s") replaced."""
    if label in targets.figures:
        where = f"the figure {'below' if targets.figures[label] > position else 'above'}"
    else:
        where = label
    return where if text is None else _NUMBER.sub(where, text)


def _document_id(target: str, chapter: str) -> str:
    """``part/file`` of a ``{doc}`` target, relative to ``chapter`` or, with a leading ``/``, to
    the book's root (``/chapters/part/file``)."""
    target = target.removesuffix(".md")
    if target.startswith("/"):
        return target.removeprefix("/chapters/").lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(chapter), target))
