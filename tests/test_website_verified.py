"""The "Last verified" line and the execution-statistics page (dlcourse.website.verified)."""

import re
import textwrap
from dataclasses import replace
from datetime import datetime, timezone

import pytest

pytest.importorskip("myst_nb")
from sphinx.application import Sphinx  # noqa: E402
from sphinx.util.docutils import docutils_namespace  # noqa: E402

from dlcourse.website.verified import (  # noqa: E402
    Machine,
    chapter_rows,
    cpu_model,
    describe_machine,
    environment_rows,
    read_machine,
    summary,
    verified_sentence,
)

BUILT_AT = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)
BEFORE, DURING = BUILT_AT.timestamp() - 3600, BUILT_AT.timestamp() + 120
MACHINE = Machine(
    built_at=BUILT_AT,
    cpu="Intel Xeon",
    cores=2,
    device="CPU",
    torch_threads=1,
    os="Linux 6.1 (x86_64)",
    python="3.11.7",
    versions={"torch": "2.13.0", "numpy": "2.4.6"},
)


def _exec_data(mtime: float, runtime: float | None = 5.43, succeeded: bool = True) -> dict:
    error = None if succeeded else "CellExecutionError"
    return {"mtime": mtime, "runtime": runtime, "method": "cache", "succeeded": succeeded,
            "error": error, "traceback": None}  # fmt: skip


def test_cpu_model_reads_the_model_name_line():
    cpuinfo = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t: fpu\n"
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert cpu_model("processor : 0\n")  # falls back to platform, never empty


def test_read_machine_describes_this_build():
    machine = read_machine()
    assert machine.cores >= 1 and machine.python.count(".") == 2
    assert set(machine.versions) == {"torch", "numpy", "matplotlib", "jupyter-book", "myst-nb"}
    assert (datetime.now(timezone.utc) - machine.built_at).total_seconds() < 60


def test_machine_phrase_names_hardware_threads_and_versions():
    assert describe_machine(MACHINE) == (
        "Intel Xeon (2 cores), 1 torch thread, Python 3.11.7, torch 2.13.0"
    )
    gpu = replace(MACHINE, device="NVIDIA H100", torch_threads=4)
    assert describe_machine(gpu).startswith(
        "NVIDIA H100 with Intel Xeon (2 cores), 4 torch threads"
    )


def test_line_of_a_chapter_executed_by_this_build():
    assert verified_sentence(_exec_data(DURING), MACHINE) == (
        "Last verified 2026-11-24 14:02 UTC on Intel Xeon (2 cores), 1 torch thread, "
        "Python 3.11.7, torch 2.13.0: ran top to bottom in 5.4 s."
    )


def test_line_of_a_cached_chapter_gives_the_run_time_and_says_cache():
    line = verified_sentence(_exec_data(BEFORE), MACHINE)
    assert line.startswith("Last verified 2026-11-24 13:00 UTC: ran top to bottom in 5.4 s.")
    assert "build of 2026-11-24 14:00 UTC" in line and "from the execution cache" in line


def test_line_of_a_failed_chapter_says_it_failed():
    line = verified_sentence(_exec_data(DURING, runtime=None, succeeded=False), MACHINE)
    assert (
        line.startswith("Last run 2026-11-24 14:02 UTC")
        and "failed with CellExecutionError" in line
    )


def test_table_rows_cover_chapters_with_execution_data_in_order():
    metadata = {
        "chapters/01/b": {"exec_data": _exec_data(DURING, runtime=2.0)},
        "chapters/00/a": {"exec_data": _exec_data(BEFORE, runtime=6.0)},
        "chapters/00/plain": {"has_execution_statistics": True},
        "chapters/02/c": {"exec_data": _exec_data(DURING, runtime=None, succeeded=False)},
    }
    rows = chapter_rows(metadata, {"chapters/00/a": "Title A"}, BUILT_AT)
    assert [(r.docname, r.title, r.method, r.status) for r in rows] == [
        ("chapters/00/a", "Title A", "cache", "passed"),
        ("chapters/01/b", "chapters/01/b", "executed", "passed"),
        ("chapters/02/c", "chapters/02/c", "executed", "failed (CellExecutionError)"),
    ]
    assert rows[0].executed_at == "2026-11-24 13:00 UTC"
    assert (
        summary(rows)
        == "2 chapters ran in 8.0 s in total, 4.0 s on average; the slowest took 6.0 s."
    )
    assert summary([]) == "No chapter reported a runtime."


def test_environment_rows_start_with_the_build_date_and_list_versions():
    rows = dict(environment_rows(MACHINE))
    assert rows["Build date"] == "2026-11-24 14:00 UTC"
    assert rows["torch threads"] == "1" and rows["torch"] == "2.13.0" and rows["Device"] == "CPU"


NOTEBOOK = """\
---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# A tiny chapter

```{code-cell} ipython3
print(6 * 7)
```
"""
STATISTICS = (
    "(chap-execution-statistics)=\n# Execution statistics\n\n```{execution-statistics}\n```\n"
)
INDEX = "# Book\n\n```{toctree}\nchapter\nstatistics\nplain\n```\n"


def _build(src, out, freshenv: bool) -> str:
    with docutils_namespace():  # a second build in this process must not see the first's roles
        app = Sphinx(src, src, out, src / "_doctrees", "html", freshenv=freshenv, status=None,
                     warningiserror=True, keep_going=True, confoverrides={"nitpicky": True})  # fmt: skip
        app.build()
    assert app.statuscode == 0
    return (out / "chapter.html").read_text(encoding="utf-8")


def test_book_build_adds_the_line_and_the_tables_and_is_honest_about_the_cache(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, text in [("index", INDEX), ("chapter", NOTEBOOK), ("statistics", STATISTICS),
                       ("plain", "# A plain page\n\nNo code here.\n")]:  # fmt: skip
        (src / f"{name}.md").write_text(text, encoding="utf-8")
    (src / "conf.py").write_text(textwrap.dedent(f"""\
        extensions = ["myst_nb", "dlcourse.website.verified"]
        nb_execution_mode = "cache"
        nb_execution_cache_path = {str(tmp_path / "cache")!r}
        exclude_patterns = ["_doctrees"]
    """))  # fmt: skip

    chapter = _build(src, tmp_path / "html", freshenv=True)
    line = re.search(r'<p class="dlcourse-verified">(.*?)</p>', chapter, re.S).group(1)
    assert re.match(r"Last verified \d{4}-\d\d-\d\d \d\d:\d\d UTC on .* ran top to bottom in", line)
    assert 'href="statistics.html#chap-execution-statistics"' in line
    assert "dlcourse-verified" not in (tmp_path / "html" / "plain.html").read_text()
    stats = (tmp_path / "html" / "statistics.html").read_text(encoding="utf-8")
    assert re.search(r'<a class="reference internal" href="chapter.html">.*A tiny chapter', stats)
    assert ">executed<" in stats and ">passed<" in stats and "1 chapter ran in" in stats
    assert ">Build date<" in stats and ">myst-nb<" in stats

    cached = _build(src, tmp_path / "html", freshenv=True)  # re-read, outputs from the cache
    assert "took these outputs from the execution cache" in cached
    assert ">cache<" in (tmp_path / "html" / "statistics.html").read_text(encoding="utf-8")
