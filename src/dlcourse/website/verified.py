"""When, on what and how fast each chapter last ran: a line on every chapter, a statistics page.

myst-nb records one ``exec_data`` dict per executed notebook in the Sphinx environment (runtime
in seconds, time of execution ``mtime``, success). The machine and library versions are read
once, when the build starts. A chapter whose ``mtime`` is older than the build start was not
run by this build: its outputs came from the execution cache, and its line says so.

- Every notebook page gets a "Last verified ..." paragraph at its end, added when the page is
  read (so it is part of the doctree and works in every builder), linking to the page labelled
  ``chap-execution-statistics``.
- The ``execution-statistics`` directive leaves a placeholder that a post-transform replaces
  with a table of every chapter, its total and mean, and a table of the build environment. It
  runs when the page is written, after every chapter has been read.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from docutils import nodes
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

STATISTICS_LABEL = "chap-execution-statistics"
LIBRARIES = ("torch", "numpy", "matplotlib", "jupyter-book", "myst-nb")
_HAS_TABLE = "has_execution_statistics"  # myst-nb doc-data key of pages with the directive


@dataclass(frozen=True)
class Machine:
    """The build's date, hardware and software, read once when the build starts."""

    built_at: datetime
    cpu: str
    cores: int
    device: str  # "CPU" or the CUDA device name
    torch_threads: int | None
    os: str
    python: str
    versions: dict[str, str]


def cpu_model(cpuinfo: str | None = None) -> str:
    """The ``model name`` line of ``/proc/cpuinfo``, else what ``platform`` knows."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _torch_threads_and_device() -> tuple[int | None, str]:
    """torch's thread count (it honours ``OMP_NUM_THREADS``) and device; torch is optional."""
    try:
        import torch
    except ImportError:
        return None, "CPU"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return torch.get_num_threads(), device


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def read_machine() -> Machine:
    """Read the build environment now (imports torch when it is installed)."""
    threads, device = _torch_threads_and_device()
    return Machine(
        built_at=datetime.now(timezone.utc),
        cpu=cpu_model(),
        cores=os.cpu_count() or 1,
        device=device,
        torch_threads=threads,
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=platform.python_version(),
        versions={name: _version(name) for name in LIBRARIES},
    )


def utc(moment: datetime | float) -> str:
    """A datetime or POSIX timestamp as ``2026-11-24 14:02 UTC``."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def describe_machine(machine: Machine) -> str:
    """One phrase: ``AMD EPYC (2 cores), 1 torch thread, Python 3.11.7, torch 2.13.0``."""
    hardware = f"{machine.cpu} ({machine.cores} cores)"
    if machine.device != "CPU":
        hardware = f"{machine.device} with {hardware}"
    parts = [hardware]
    if machine.torch_threads is not None:
        plural = "" if machine.torch_threads == 1 else "s"
        parts.append(f"{machine.torch_threads} torch thread{plural}")
    parts += [f"Python {machine.python}", f"torch {machine.versions.get('torch', '?')}"]
    return ", ".join(parts)


def from_cache(exec_data: Mapping[str, Any], built_at: datetime) -> bool:
    """Whether the outputs predate this build, i.e. were reused rather than executed now."""
    return exec_data["mtime"] < built_at.timestamp()


def verified_sentence(exec_data: Mapping[str, Any], machine: Machine) -> str:
    """The "Last verified ..." sentence of a chapter, honest about cached outputs."""
    runtime = exec_data.get("runtime")
    took = "" if runtime is None else f" in {runtime:.1f} s"
    when, where = utc(exec_data["mtime"]), describe_machine(machine)
    if not exec_data["succeeded"]:
        return f"Last run {when} on {where}: failed with {exec_data.get('error')}{took}."
    if from_cache(exec_data, machine.built_at):
        return (
            f"Last verified {when}: ran top to bottom{took}. The build of {utc(machine.built_at)} "
            f"({where}) took these outputs from the execution cache."
        )
    return f"Last verified {when} on {where}: ran top to bottom{took}."


@dataclass(frozen=True)
class ChapterRow:
    """One line of the statistics table."""

    docname: str
    title: str
    runtime: float | None
    method: str  # "executed" in this build, or "cache"
    status: str
    executed_at: str


def chapter_rows(
    metadata: Mapping[str, Mapping[str, Any]], titles: Mapping[str, str], built_at: datetime
) -> list[ChapterRow]:
    """Rows for every document with execution data, in docname (= curriculum) order."""
    rows = []
    for docname in sorted(metadata):
        data = metadata[docname].get("exec_data")
        if not data:
            continue
        rows.append(
            ChapterRow(
                docname=docname,
                title=titles.get(docname, docname),
                runtime=data.get("runtime"),
                method="cache" if from_cache(data, built_at) else "executed",
                status="passed" if data["succeeded"] else f"failed ({data.get('error')})",
                executed_at=utc(data["mtime"]),
            )
        )
    return rows


def summary(rows: list[ChapterRow]) -> str:
    """Total and mean runtime of the chapters that report one."""
    times = [row.runtime for row in rows if row.runtime is not None]
    if not times:
        return "No chapter reported a runtime."
    total = sum(times)
    return (
        f"{len(times)} chapter{'' if len(times) == 1 else 's'} ran in {total:.1f} s in total, "
        f"{total / len(times):.1f} s on average; the slowest took {max(times):.1f} s."
    )


def environment_rows(machine: Machine) -> list[tuple[str, str]]:
    """The environment table: what was measured on, and with which versions."""
    threads = "?" if machine.torch_threads is None else str(machine.torch_threads)
    rows = [
        ("Build date", utc(machine.built_at)),
        ("CPU", machine.cpu),
        ("Cores", str(machine.cores)),
        ("Device", machine.device),
        ("torch threads", threads),
        ("Operating system", machine.os),
        ("Python", machine.python),
    ]
    return rows + [(name, machine.versions[name]) for name in machine.versions]


# --- docutils nodes ----------------------------------------------------------------------------


def _link(reftype: str, target: str, text: str) -> pending_xref:
    """A reference resolved later by Sphinx, in any builder."""
    link = pending_xref(
        refdomain="std", reftype=reftype, reftarget=target, refexplicit=True, refwarn=True
    )
    link += nodes.inline(text=text)
    return link


def _table(header: list[str], body: list[list[nodes.Node | str]]) -> nodes.table:
    """A plain docutils table; strings become paragraphs."""
    tgroup = nodes.tgroup(cols=len(header))
    tgroup += [nodes.colspec(colwidth=1) for _ in header]

    def row(cells: list[nodes.Node | str]) -> nodes.row:
        entries = [nodes.paragraph(text=c) if isinstance(c, str) else nodes.paragraph("", "", c)
                   for c in cells]  # fmt: skip
        return nodes.row("", *(nodes.entry("", p) for p in entries))

    tgroup += nodes.thead("", row(list(header)))
    tgroup += nodes.tbody("", *(row(cells) for cells in body))
    return nodes.table("", tgroup, classes=["colwidths-auto"])


def statistics_nodes(rows: list[ChapterRow], machine: Machine) -> list[nodes.Node]:
    """The chapter table, its summary and the environment table."""
    chapters = _table(
        ["Chapter", "Runtime (s)", "Method", "Status", "Executed at"],
        [
            [
                _link("doc", "/" + r.docname, r.title),
                "-" if r.runtime is None else f"{r.runtime:.1f}",
                r.method,
                r.status,
                r.executed_at,
            ]
            for r in rows
        ],
    )
    environment = _table(
        ["Environment", "This build"], [list(pair) for pair in environment_rows(machine)]
    )
    return [chapters, nodes.paragraph(text=summary(rows)), environment]


class ExecutionStatisticsNode(nodes.General, nodes.Element):
    """Placeholder of the statistics tables, replaced when the page is written."""


class ExecutionStatistics(SphinxDirective):
    """``execution-statistics``: the tables of chapter runtimes and of the build environment."""

    def run(self) -> list[nodes.Node]:
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, _HAS_TABLE, True)
        return [ExecutionStatisticsNode()]


class FillExecutionStatistics(SphinxPostTransform):
    """Replace the placeholder, once every chapter has been read."""

    default_priority = 8  # before the references resolver (10) resolves our links

    def run(self, **kwargs: Any) -> None:
        placeholders = list(self.document.findall(ExecutionStatisticsNode))
        if not placeholders:
            return
        titles = {doc: title.astext() for doc, title in self.env.titles.items()}
        metadata = NbMetadataCollector.get_doc_data(self.env)
        machine = self.env.verified_machine
        rows = chapter_rows(metadata, titles, machine.built_at)
        for node in placeholders:
            node.replace_self(statistics_nodes(rows, machine))


# --- Sphinx events -----------------------------------------------------------------------------


def _read_machine(app: Sphinx) -> None:
    """Read the environment before any notebook runs, so that ``from_cache`` can tell."""
    app.env.verified_machine = read_machine()


def _add_verified_line(app: Sphinx, doctree: nodes.document) -> None:
    """Append the "Last verified" paragraph to a notebook page that has execution data."""
    exec_data = NbMetadataCollector.get_exec_data(app.env, app.env.docname)
    if not exec_data:
        return
    sentence = verified_sentence(exec_data, app.env.verified_machine)
    line = nodes.paragraph("", sentence + " See ", classes=["dlcourse-verified"])
    line += _link("ref", STATISTICS_LABEL, "Execution statistics")
    line += nodes.Text(".")
    # at the end of the last top-level section, i.e. after the chapter's summary
    sections = [child for child in doctree.children if isinstance(child, nodes.section)]
    (sections[-1] if sections else doctree).append(line)


def _rewrite_statistics_pages(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """Pages with the directive are written on every build: any chapter may have changed."""
    return [
        doc for doc, data in NbMetadataCollector.get_doc_data(env).items() if data.get(_HAS_TABLE)
    ]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_node(ExecutionStatisticsNode)
    app.add_directive("execution-statistics", ExecutionStatistics)
    app.add_post_transform(FillExecutionStatistics)
    app.connect("builder-inited", _read_machine)
    app.connect("doctree-read", _add_verified_line)
    app.connect("env-updated", _rewrite_statistics_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
