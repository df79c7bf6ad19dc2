"""Run a learner's notebook in a fresh kernel, cell by cell, whatever its cells do.

A cell that runs past its time limit, or kills the kernel (os._exit, a segfault), is recorded and
skipped: the kernel is restarted and the cells that worked are replayed, so later definitions still
count. The same holds for the grader's own calls of the learner's functions, appended after the
learner's cells.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from traitlets.config import Config

from llmcourse.grading.sandbox import SandboxedKernelManager

MAX_RESTARTS = 8


@dataclass
class KernelRun:
    # cell index -> "timed out" / "crashed the kernel"
    failed_cells: dict[int, str] = field(default_factory=dict)
    # job key -> "ran" / "timed out" / "crashed the kernel"
    jobs: dict[str, str] = field(default_factory=dict)


def run_with_jobs(nb: nbformat.NotebookNode, jobs: dict[str, str], workdir: Path, scratch: Path,
                  cell_timeout: float, job_timeout: float,
                  sandbox: list[str] | None = None) -> KernelRun:
    """Execute every code cell of `nb`, then each job's source (keyed by name), in one kernel,
    surviving hangs and crashes. Learner cells that raise are fine: their errors stay in their
    outputs. The kernel talks over IPC sockets in `scratch` (local only, and no warning about
    unencrypted TCP). With `sandbox` (sandbox.sandbox_command), the kernel runs inside it, its
    connection file in `scratch`."""
    run = KernelRun()
    learner = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for attempt in range(MAX_RESTARTS):
        work = copy.deepcopy(nb)
        job_cells = {key: nbformat.v4.new_code_cell(source) for key, source in jobs.items()}
        work.cells.extend(job_cells.values())
        config = Config()
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(scratch / f"kernel-{attempt}")
        if sandbox is not None:
            config.NotebookClient.kernel_manager_class = SandboxedKernelManager
            config.SandboxedKernelManager.sandbox = sandbox
            config.KernelManager.connection_file = str(scratch / f"kernel-{attempt}.json")
        # the client owns its kernel and kills it outright on exit: a kernel stuck in a loop gets no
        # grace period
        client = NotebookClient(work, config=config, shutdown_kernel="immediate",
                                timeout=cell_timeout, interrupt_on_timeout=False, allow_errors=True,
                                kernel_name="python3", startup_timeout=120, record_timing=False,
                                resources={"metadata": {"path": str(workdir)}})
        current: tuple[str, int | str] | None = None
        try:
            with client.setup_kernel():
                for index, _ in learner:
                    if index in run.failed_cells:
                        continue
                    current = ("cell", index)
                    client.timeout = cell_timeout
                    client.execute_cell(work.cells[index], index)
                for offset, (key, cell) in enumerate(job_cells.items()):
                    if key in run.jobs:
                        continue
                    current = ("job", key)
                    client.timeout = job_timeout
                    client.execute_cell(cell, len(nb.cells) + offset)
                    run.jobs[key] = "ran"
            return run
        except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as err:
            if current is None:  # the kernel did not even start: nothing to skip, nothing to retry
                raise
            reason = "crashed the kernel" if isinstance(err, DeadKernelError) else "timed out"
            kind, key = current
            if kind == "cell":
                run.failed_cells[key] = reason
            else:
                run.jobs[key] = reason
    return run
