"""A fresh IPython kernel that runs one cell at a time under a time limit.

Built on ``nbclient``. A cell ends in one of four ways: ``ok``, ``error`` (an exception in the
cell, reported by name), ``timeout`` or ``died`` (the kernel process is gone: ``os._exit``, a
segfault, running out of memory). After a timeout or a death the kernel cannot be trusted (a
busy kernel may never answer again) and must be restarted.
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

# Grading needs no pictures: the Agg backend skips rendering them. One thread, as in the book.
KERNEL_ENV = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "DLCOURSE_OFFLINE": "1"}


@dataclass(frozen=True)
class CellRun:
    status: str  # ok | error | timeout | died
    stdout: str = ""
    error: str = ""  # "ZeroDivisionError: division by zero" when status is error


class Kernel:
    """``with Kernel(workdir) as kernel: kernel.run(source, timeout)``; ``restart()`` if needed."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._stack: ExitStack | None = None
        self._client: NotebookClient | None = None

    def start(self) -> None:
        notebook = nbformat.v4.new_notebook()
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            allow_errors=True,
            interrupt_on_timeout=False,
            shutdown_kernel="immediate",
            resources={"metadata": {"path": str(self.workdir)}},
        )
        stack = ExitStack()
        stack.enter_context(client.setup_kernel(env={**os.environ, **KERNEL_ENV}))
        self._stack, self._client = stack, client

    def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            try:
                stack.close()
            except Exception:  # a kernel that is already gone cannot be shut down twice
                pass

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Kernel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, source: str, timeout: float) -> CellRun:
        """Run ``source`` as one cell, for at most ``timeout`` seconds."""
        client = self._client
        cell = nbformat.v4.new_code_cell(source)
        client.nb.cells = [cell]
        client.timeout = max(1, math.ceil(timeout))
        try:
            client.execute_cell(cell, 0)
        except CellTimeoutError:
            return CellRun("timeout")
        except DeadKernelError:
            return CellRun("died")
        stdout = "".join(
            o.get("text", "")
            for o in cell.outputs
            if o.output_type == "stream" and o.name == "stdout"
        )
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors:
            ename, evalue = errors[0].get("ename", "Error"), errors[0].get("evalue", "")
            return CellRun("error", stdout, f"{ename}: {evalue}" if evalue else ename)
        return CellRun("ok", stdout)
