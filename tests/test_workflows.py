"""The GitHub workflows parse and call the same make targets as `.ci/run`.

They cannot run here; actionlint is not installable offline, so this checks their structure.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
MAKE_TARGETS = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def _load(path):
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as True
    return workflow


def _runs(workflow):
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"]
            if "run" in step]  # fmt: skip


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_well_formed(path):
    workflow = _load(path)
    assert workflow["name"] and workflow["on"] and workflow["jobs"]
    for job in workflow["jobs"].values():
        assert job["runs-on"] and job["timeout-minutes"] <= 60
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), step
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]
    for command in _runs(workflow):
        for target in re.findall(r"\bmake ([a-z][\w-]*)", command):
            assert target in MAKE_TARGETS, target


def test_cpu_workflow_runs_the_ci_entry_point():
    assert "bash .ci/run" in _runs(_load(ROOT / ".github/workflows/ci.yml"))


def test_gpu_workflow_runs_every_chapter_weekly_on_a_gpu_runner():
    workflow = _load(ROOT / ".github/workflows/gpu.yml")
    job = workflow["jobs"]["chapters-on-cuda"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert workflow["on"]["schedule"][0]["cron"]
    runs = _runs(workflow)
    assert "make chapters" in runs and any("cuda.is_available()" in r for r in runs)
    # the same target that `.ci/run` runs, through `make test`
    assert re.search(r"^test:.*\bchapters\b", (ROOT / "Makefile").read_text(), re.M)
