"""Colab copies of the chapters, and a chapter run the way Colab runs it."""

import json
import os
import shutil
import sys
import venv
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from dlcourse.colab import (
    Repository,
    bootstrap_source,
    is_bootstrap,
    main,
    notebook_copy,
    read_repository,
    sync_bootstrap,
    write_notebooks,
)
from dlcourse.website.notebook_links import colab_url

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters/01-foundations/05-backpropagation.md"
REPOSITORY = read_repository(ROOT / "_config.yml")


def test_repository_is_read_from_the_book_config():
    assert REPOSITORY.url.startswith("https://github.com/")
    assert REPOSITORY.branch == "main"


@pytest.mark.parametrize(
    ("url", "branch", "message"),
    [
        ("https://gitlab.com/a/b", "main", "url"),
        ("https://github.com/a", "main", "url"),
        ("https://github.com/a/b", "main; rm -rf /", "branch"),
    ],
)
def test_repository_rejects_what_colab_or_pip_cannot_use(url, branch, message):
    with pytest.raises(ValueError, match=message):
        Repository(url, branch)


def test_config_without_repository_is_a_clear_error(tmp_path):
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="repository"):
        read_repository(tmp_path / "_config.yml")


def test_bootstrap_installs_from_the_configured_repository_only_on_colab():
    source = bootstrap_source(Repository("https://github.com/someone/fork", "dev"))
    assert "git+https://github.com/someone/fork@dev" in source
    assert '"google.colab" in sys.modules' in source
    assert 'find_spec("dlcourse") is None' in source
    compile(source, "bootstrap", "exec")


def test_notebook_copy_is_clean_and_keeps_tags_and_kernelspec():
    notebook = notebook_copy(CHAPTER, REPOSITORY)
    assert notebook.nbformat == 4 and "jupytext" not in notebook.metadata
    assert notebook.metadata.kernelspec.name == "python3"
    first = next(c for c in notebook.cells if c.cell_type == "code")
    assert is_bootstrap(first) and "remove-cell" in first.metadata.tags
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


def test_write_notebooks_mirrors_the_chapter_tree(tmp_path):
    written = write_notebooks([ROOT / "chapters"], tmp_path, REPOSITORY, root=ROOT)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert "chapters/01-foundations/05-backpropagation.ipynb" in names
    assert "chapters/00-start/03-instructors.ipynb" not in names  # a plain page, no notebook
    nbformat.validate(nbformat.read(written[0], as_version=4))


def test_sync_bootstrap_rewrites_only_stale_cells(tmp_path):
    chapter = tmp_path / "chapter.md"
    chapter.write_text(CHAPTER.read_text(encoding="utf-8"), encoding="utf-8")
    assert sync_bootstrap([chapter], REPOSITORY) == []
    fork = Repository("https://github.com/someone/fork", "dev")
    assert sync_bootstrap([chapter], fork) == [chapter]
    first = next(c for c in jupytext.read(chapter).cells if c.cell_type == "code")
    assert first.source == bootstrap_source(fork)
    assert first.metadata.tags == ["remove-cell"]


def test_a_chapter_without_bootstrap_is_refused(tmp_path):
    chapter = tmp_path / "chapter.md"
    text = CHAPTER.read_text(encoding="utf-8").replace("# Colab bootstrap", "# setup", 1)
    chapter.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="first code cell"):
        notebook_copy(chapter, REPOSITORY)


def test_command_line_writes_the_copies(tmp_path, capsys):
    assert main([str(CHAPTER), "--out", str(tmp_path), "--config", str(ROOT / "_config.yml")]) == 0
    assert (tmp_path / "chapters/01-foundations/05-backpropagation.ipynb").is_file()
    assert "1 notebooks" in capsys.readouterr().out


def test_colab_url_opens_the_copy_on_the_colab_branch():
    url = colab_url("https://colab.research.google.com/", REPOSITORY, "colab", "chapters/a/b.ipynb")
    owner_name = REPOSITORY.url.removeprefix("https://github.com/")
    assert (
        url
        == f"https://colab.research.google.com/github/{owner_name}/blob/colab/chapters/a/b.ipynb"
    )


def _colab_like_kernel(tmp_path: Path) -> dict:
    """A kernel that sees the book's libraries but not dlcourse, with ``google.colab`` imported.

    A fresh venv whose ``.pth`` adds this venv's site-packages as a plain path (so the editable
    dlcourse install, itself a ``.pth``, stays invisible) and a fake ``google.colab``;
    ``sitecustomize`` imports it at start-up, as Colab's runtime does.
    """
    env_dir = tmp_path / "colab-venv"
    venv.create(env_dir, with_pip=False)
    site = next(env_dir.glob("lib/python3*/site-packages"))
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stands in for Colab."""\n')
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "book.pth").write_text(f"{fake}\n{ours}\n")
    (site / "sitecustomize.py").write_text("import google.colab  # noqa: F401\n")
    spec_dir = tmp_path / "jupyter" / "kernels" / "colab-sim"
    spec_dir.mkdir(parents=True)
    argv = [str(env_dir / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Colab (simulated)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return {"JUPYTER_PATH": str(tmp_path / "jupyter"), "site": str(site)}


def _package_checkout(target: Path) -> Path:
    """What pip needs from this checkout (it builds in place; the real one stays untouched)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", target / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    return target


def test_generated_notebook_runs_with_the_colab_bootstrap(tmp_path, monkeypatch):
    """The .ipynb copy installs dlcourse (from this checkout), runs top to bottom, and a second
    bootstrap run installs nothing."""
    kernel = _colab_like_kernel(tmp_path)
    checkout = _package_checkout(tmp_path / "checkout")
    monkeypatch.setenv("JUPYTER_PATH", kernel["JUPYTER_PATH"])
    monkeypatch.setenv("DLCOURSE_SOURCE", checkout.as_uri())
    # offline, no dependency resolution (the libraries are there), the build backend from here
    for name, value in [("PIP_NO_INDEX", "1"), ("PIP_NO_DEPS", "1"), ("PIP_IGNORE_INSTALLED", "1")]:
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # Colab's kernel cannot see this checkout

    notebook = notebook_copy(CHAPTER, REPOSITORY)
    rerun = 'os.environ["DLCOURSE_SOURCE"] = "file:///nonexistent"\n' + bootstrap_source(REPOSITORY)
    where = "import dlcourse\nprint(dlcourse.__file__)"
    notebook.cells += [nbformat.v4.new_code_cell(rerun), nbformat.v4.new_code_cell(where)]
    client = NotebookClient(
        notebook,
        kernel_name="colab-sim",
        timeout=300,
        resources={"metadata": {"path": str(CHAPTER.parent)}},
    )
    client.execute()
    printed = notebook.cells[-1].outputs[0]["text"]
    assert printed.startswith(kernel["site"]), printed
    assert os.environ["DLCOURSE_SOURCE"] == checkout.as_uri()
