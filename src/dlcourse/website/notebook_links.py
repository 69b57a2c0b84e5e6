"""Point each chapter page's Colab and ``.ipynb`` download buttons at clean notebook copies.

sphinx-book-theme builds the Colab link from the source file (``chapters/x.md``), which Colab
cannot open, and offers the *executed* notebook for download. This extension writes
``dlcourse.colab.notebook_copy`` of every notebook page to ``<html>/notebooks/<page>.ipynb``,
makes the download button fetch that file, and makes the Colab button open the same copy on the
branch ``colab_branch`` (``_config.yml``: ``sphinx: config: colab_branch``), which
``.ci/publish_colab`` fills with ``python -m dlcourse.colab``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import nbformat
from sphinx.application import Sphinx

from dlcourse.chapters import is_notebook_chapter
from dlcourse.colab import Repository, notebook_copy

NOTEBOOK_DIR = "notebooks"
_DOWNLOAD_LABEL = "download-notebook-button"


def colab_url(colab: str, repository: Repository, branch: str, notebook: str) -> str:
    """``colab``/github/<owner>/<name>/blob/``branch``/``notebook``: how Colab opens a GitHub file."""
    owner_name = repository.url.removeprefix("https://github.com/")
    return f"{colab.rstrip('/')}/github/{owner_name}/blob/{branch}/{notebook}"


def _repository(app: Sphinx) -> Repository:
    options = app.config.html_theme_options
    return Repository(options["repository_url"], options.get("repository_branch") or "main")


def _rewrite_buttons(app: Sphinx, pagename: str, templatename, context: dict, doctree) -> None:
    source = Path(app.env.doc2path(pagename))
    if doctree is None or not is_notebook_chapter(source):
        return
    repository = _repository(app)
    target = Path(app.outdir, NOTEBOOK_DIR, pagename + ".ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook_copy(source, repository), target)

    book = app.config.html_theme_options.get("path_to_docs", "")
    in_repository = str(PurePosixPath(book, pagename + ".ipynb"))
    colab = app.config.html_theme_options.get("launch_buttons", {}).get("colab_url", "")
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            if button.get("text") == "Colab":
                button["url"] = colab_url(colab, repository, app.config.colab_branch, in_repository)
            elif button.get("label") == _DOWNLOAD_LABEL:
                button["url"] = context["pathto"](f"{NOTEBOOK_DIR}/{pagename}.ipynb", 1)
                button["tooltip"] = "Download this chapter as a notebook (no outputs)"


def setup(app: Sphinx) -> dict:
    app.add_config_value("colab_branch", "colab", "html")
    # sphinx-book-theme adds its header buttons at priority 501
    app.connect("html-page-context", _rewrite_buttons, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
