"""Sphinx extensions of the course website, listed in `_config.yml` under `extra_extensions`.

Each submodule is one extension with its own ``setup(app)``; none is needed to run a chapter.
"""
