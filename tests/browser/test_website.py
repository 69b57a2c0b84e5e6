"""The built website as a reader sees it: every page in headless Chromium, with the network cut.

Run by ``make browser-test`` after ``make book``. The site in ``_build/html`` is served on
127.0.0.1; every request to another host is aborted and reported, so a page that needs a CDN
fails here even on a machine that is online. Chromium is Debian's (``/usr/bin/chromium``),
driven by Playwright's Python package; Playwright downloads no browser.

Screenshots of the first chapter page of each part (and one in dark mode) go to
``_build/screenshots/`` for CI to keep.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import threading
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import matplotlib.image
import pytest
import yaml

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
NOT_PAGES = ("_static", "_sources", "_images", "reports", "notebooks")

# Console messages that are not ours to fix; each with the reason it is harmless.
BENIGN_CONSOLE = {
    "THEBE_JS_URL": "sphinx-thebe writes its config <script> twice on every page",
    "reading 'Queue'": "the widget manager calls MathJax 2's Hub.Queue (ipywidgets #3849); "
    "only LaTeX inside widget labels stays untypeset",
    "invalid theme mode": "pydata-sphinx-theme with an empty localStorage, resets to auto",
}


def _pages() -> list[str]:
    if not SITE.is_dir():
        return []
    pages = (p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html"))
    return sorted(p for p in pages if not p.startswith(NOT_PAGES))


def _is_redirect(page: str) -> bool:
    return 'http-equiv="Refresh"' in (SITE / page).read_text(encoding="utf-8")


PAGES = [page for page in _pages() if not _is_redirect(page)]
NOTEBOOK_PAGES = [p for p in PAGES if 'class="cell docutils container"' in (SITE / p).read_text()]


def _chromium() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        pytest.fail("no Chromium: install Debian's package (sudo apt-get install chromium)")
    return found


@pytest.fixture(scope="session")
def site_url():
    handler = partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def browser():
    with playwright_sync.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=_chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


class Visit:
    """One page load: the page, and what went wrong while it loaded and typeset."""

    def __init__(self, browser, site_url: str, path: str, *, dark: bool = False):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        if dark:
            self.context.add_init_script("localStorage.setItem('mode', 'dark')")
        self.offsite, self.failed, self.errors = [], [], []
        host = urlsplit(site_url).netloc
        self.context.route("**/*", partial(self._only_local, host))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self._error(str(error)))
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.page.goto(f"{site_url}/{path}", wait_until="load")
        self.page.evaluate("async () => { await window.MathJax?.startup?.promise; }")
        self.page.wait_for_load_state("networkidle")

    def _only_local(self, host: str, route) -> None:
        if urlsplit(route.request.url).netloc == host or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.offsite.append(route.request.url)
            route.abort()

    def _console(self, message) -> None:
        # a failed resource is reported by _response, with its URL
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self._error(message.text)

    def _error(self, text: str) -> None:
        if not any(benign in text for benign in BENIGN_CONSOLE):
            self.errors.append(text)

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, site_url):
    opened = []

    def open_page(path: str, **kwargs) -> Visit:
        opened.append(Visit(browser, site_url, path, **kwargs))
        return opened[-1]

    yield open_page
    for page in opened:
        page.close()


def test_site_is_built():
    assert PAGES, "no _build/html: run `make book` first"
    assert len(NOTEBOOK_PAGES) >= 6


def test_front_page_redirects_to_the_introduction(browser, site_url):
    page = browser.new_page()
    page.goto(f"{site_url}/index.html")
    page.wait_for_url("**/intro.html")
    page.close()


# what a page's DOM says about math, images, widgets and links, read after typesetting
_INSPECT = """() => {
  const article = document.querySelector('article') || document.body;
  const imgs = [...article.querySelectorAll('img')];
  return {
    math: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    untypeset: [...document.querySelectorAll('.math')]
        .filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60)),
    broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
    unlabelled: imgs.filter(i => !i.alt && !i.closest('figure')?.querySelector('figcaption')
        && !i.closest('.jupyter-widgets')).map(i => i.src),
    figures: article.querySelectorAll('.cell_output img').length,
    widgetViews: document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]').length,
    widgetsRendered: [...document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]')]
        .filter(s => s.parentElement.querySelector('.jupyter-widgets')).length,
    widgetsWithFigure: [...document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]')]
        .filter(s => s.parentElement.querySelector('.jupyter-widgets img')).length,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    cutOff: [...document.querySelectorAll('mjx-container[display="true"]')]
        .filter(m => m.scrollWidth > m.clientWidth + 1
                && !['auto', 'scroll'].includes(getComputedStyle(m).overflowX))
        .map(m => m.textContent.slice(0, 40)),
  };
}"""


@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline(visit, site_url, path):
    """No request leaves the machine or fails, no script error, math typeset, images labelled;
    a chapter page also has a figure, rendered widgets and links to its notebook copy."""
    page = visit(path)
    if page.offsite:
        pytest.fail(f"requests leave 127.0.0.1 (a CDN?): {page.offsite[:3]}")
    assert page.failed == [], "requests that failed"
    assert page.errors == [], "JavaScript errors"
    seen = page.page.evaluate(_INSPECT)
    assert seen["mathErrors"] == 0
    assert seen["untypeset"] == [], "math left as raw TeX"
    assert seen["cutOff"] == [], "wide equations cut off at the column edge"
    assert seen["broken"] == [], "broken images"
    assert seen["unlabelled"] == [], "images with neither alt text nor a caption"
    assert seen["widgetsRendered"] == seen["widgetViews"], "widgets that did not render"
    assert seen["widgetsWithFigure"] == seen["widgetViews"], "a widget that shows no figure"
    if path in NOTEBOOK_PAGES:
        _check_chapter_page(page, seen, site_url, path.removesuffix(".html"))


def _check_chapter_page(page: Visit, seen: dict, site_url: str, stem: str) -> None:
    assert seen["figures"] >= 1, "a chapter without a figure"
    colab = [link for link in seen["links"] if link.startswith("https://colab.research.google.com")]
    assert colab and all(link.endswith(f"/blob/colab/{stem}.ipynb") for link in colab), colab
    download = f"{site_url}/notebooks/{stem}.ipynb"
    assert download in seen["links"]
    notebook = json.loads(page.page.request.get(download).body())
    assert notebook["nbformat"] == 4 and not any(c.get("outputs") for c in notebook["cells"])


def test_math_typesets(visit):
    page = visit("chapters/01-foundations/05-backpropagation.html")
    seen = page.page.evaluate(_INSPECT)
    assert seen["math"] >= 10 and seen["untypeset"] == []


def test_solution_dropdown_opens_on_click(visit):
    page = visit(NOTEBOOK_PAGES[0]).page
    solution = page.locator("div.solution.dropdown").first
    body = solution.locator("section").first
    assert not body.is_visible()
    solution.locator("button.toggle-button").click()
    body.wait_for(state="visible", timeout=5000)


def test_widgets_render_and_respond(visit):
    pages = [p for p in NOTEBOOK_PAGES if "jupyter.widget-view+json" in (SITE / p).read_text()]
    assert pages, "no page has a widget"
    page = visit(pages[0]).page
    page.wait_for_selector(".jupyter-widgets .widget-slider, .jupyter-widgets input", timeout=15000)
    assert page.locator(".jupyter-widgets").count() >= 1


def _first_chapter_of_each_part() -> dict[str, str]:
    firsts = {}
    for part in TOC["parts"]:
        for chapter in part["chapters"]:
            page = chapter["file"] + ".html"
            if page in NOTEBOOK_PAGES:
                firsts[chapter["file"].split("/")[1]] = page
                break
    return firsts


@pytest.mark.parametrize(("part", "path"), sorted(_first_chapter_of_each_part().items()))
def test_screenshot_of_each_part(visit, part, path):
    page = visit(path).page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{part}.png", full_page=True)
    assert (SCREENSHOTS / f"{part}.png").stat().st_size > 50_000


def test_dark_mode_keeps_figures_readable(visit):
    page = visit(NOTEBOOK_PAGES[0], dark=True).page
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dark-mode.png", full_page=True)


def test_figures_are_opaque_so_dark_mode_cannot_hide_their_text():
    """A transparent PNG shows black axis labels on the dark theme's near-black background."""
    pngs = sorted((SITE / "_images").glob("*.png"))
    assert pngs
    transparent = [p.name for p in pngs if _has_transparency(p)]
    assert transparent == []


def _has_transparency(png: Path) -> bool:
    pixels = matplotlib.image.imread(png)
    return pixels.ndim == 3 and pixels.shape[2] == 4 and float(pixels[..., 3].min()) < 1.0


def test_benign_console_list_is_short_and_explained():
    assert len(BENIGN_CONSOLE) <= 5
    assert all(re.search(r"\w{4,}", why) for why in BENIGN_CONSOLE.values())
