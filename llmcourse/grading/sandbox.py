"""The learner's kernel in a sandbox: bubblewrap (Linux), with limits on memory, CPU and processes.

What the sandboxed kernel sees and may do:
- the system's programs, libraries and configuration (/usr, /etc), the Python environment, the
  course package and the notebook's own folder, all read-only; nothing else of the filesystem
  (other students' folders, home directories, the grader's files);
- one writable folder, the grading run's private scratch folder (its HOME too), and a private /tmp;
- no network: a network namespace of its own, with nothing but its own loopback;
- its own process namespace: when the kernel ends, every process it started ends with it;
- when the grader runs as root, an unprivileged user (nobody), so that the process limit applies;
- limits on address space, CPU seconds and processes (prlimit).

The grader's own process, its reference answers and its comparison stay outside. Where bubblewrap
cannot run (macOS, Windows, a container without the namespaces it needs), `sandbox_problem` says
why, and the grader says so in one line and runs the kernel as before, unless asked to require the
sandbox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from traitlets import List, Unicode

NOBODY = 65534
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class Limits:
    """Per kernel: address space (a PyTorch kernel maps about 2 GiB before it computes anything),
    CPU seconds of any one process, and processes of the sandbox's user."""

    memory_bytes: int = 8 * 2**30
    cpu_seconds: int = 1800
    processes: int = 256


class SandboxError(RuntimeError):
    """The sandbox was required and cannot run here; the message says why."""


def sandbox_problem() -> str | None:
    """None where the sandbox can run; else the reason it cannot, in a few words."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox uses Linux namespaces (bubblewrap), not available on {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    try:
        command = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid",
                   "--die-with-parent", "true"]
        probe = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap did not run ({type(err).__name__})"
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or ["no message"])[0]
        return f"bubblewrap cannot create namespaces here ({first})"
    return None


def readable_paths(notebook_folder: Path, extra: Sequence[Path] = ()) -> list[Path]:
    """What the kernel may read: the Python installation and environment, the folders on sys.path
    (the course package among them, wherever it is installed), the notebook's folder, and
    `extra`."""
    import llmcourse

    paths = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(os.path.realpath(sys.executable)).parent.parent,
        Path(llmcourse.__file__).resolve().parent,
        notebook_folder.resolve(),
        *(Path(p).resolve() for p in extra),
    }
    # only library folders from sys.path: a script's or a test runner's own entries (the current
    # folder, a project root) could be as wide as a home directory
    paths |= {
        Path(p).resolve()
        for p in sys.path
        if p and Path(p).is_dir() and Path(p).name in ("site-packages", "dist-packages")
    }
    # keep the outermost of nested paths: binding a folder binds everything below it
    ordered = sorted((p for p in paths if p.exists()), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for p in ordered:
        system = any(str(p) == s or str(p).startswith(s + "/") for s in SYSTEM)
        if not any(p == k or k in p.parents for k in kept) and not system:
            kept.append(p)
    wide = [p for p in kept if len(p.parts) < 3]  # "/" or "/home": the view would be the machine
    if wide:
        raise SandboxError(f"refusing to show the kernel a top-level folder: {wide}")
    return kept


def _parents(paths: Sequence[Path]) -> list[str]:
    """The folders above `paths` that the sandbox must create (traversable by anyone) to mount
    them."""
    out: list[str] = []
    for path in paths:
        for parent in reversed(path.parents):
            text = str(parent)
            system = any(text == s or text.startswith(s + "/") for s in SYSTEM)
            if text not in ("/", "/tmp") and not system and text not in out:
                out.append(text)
    return out


def sandbox_command(readable: Sequence[Path], scratch: Path, workdir: Path,
                    limits: Limits = Limits()) -> list[str]:
    """The command that runs another command in the sandbox: bwrap, its mounts and namespaces, then
    prlimit, then (as root) setpriv to the user nobody. Append the kernel's command to it."""
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--hostname", "sandbox",
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--tmpfs", "/tmp",
    ]
    for name in SYSTEM:
        path = Path(name)
        if path.is_symlink():  # merged /usr: /lib -> usr/lib
            argv += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            argv += ["--ro-bind", name, name]
    mounts = [*readable, scratch]
    for folder in _parents(mounts):
        argv += ["--perms", "0755", "--dir", folder]
    for path in readable:
        argv += ["--ro-bind", str(path), str(path)]
    argv += [
        "--bind", str(scratch), str(scratch),
        "--chdir", str(workdir),
        "--setenv", "HOME", str(scratch),
        "--setenv", "TMPDIR", "/tmp",
        "--setenv", "MPLCONFIGDIR", str(scratch / ".matplotlib"),
        "--unsetenv", "JUPYTER_RUNTIME_DIR",
        # the parent's PID means nothing in the sandbox's own PID namespace, where the kernel's
        # parent is bwrap's init: a kernel watching it would exit at once; --die-with-parent does
        # that job instead
        "--unsetenv", "JPY_PARENT_PID",
    ]
    argv += [
        "prlimit",
        f"--as={limits.memory_bytes}",
        f"--cpu={limits.cpu_seconds}",
        f"--nproc={limits.processes}",
        "--",
    ]
    if os.geteuid() == 0:  # root ignores the process limit: become nobody
        argv += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    # the kernel's own messages (started without a parent, it prints how to connect to it) go to a
    # log in scratch
    return argv + ["sh", "-c", 'exec "$@" >>"$HOME/kernel.log" 2>&1', "sh"]


def prepare_scratch(scratch: Path) -> None:
    """Let the sandbox's user write the scratch folder; the sticky bit keeps it from deleting or
    replacing the grader's own files there (the inputs of each exercise)."""
    scratch.chmod(0o1777)


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts its kernel inside the sandbox (`sandbox` is the command of
    `sandbox_command`), with its connection file in the scratch folder, readable by the sandbox's
    user."""

    sandbox = List(Unicode(), config=True, help="the sandbox command to put before the kernel's")

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return [*self.sandbox, *super().format_kernel_cmd(extra_arguments)]

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        Path(self.connection_file).chmod(0o644)
