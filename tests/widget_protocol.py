"""A test's side of the Jupyter widget protocol: play the front end against a real kernel.

`kernel` starts an IPython kernel over IPC (no open TCP ports); `open_widgets` runs code in it and
collects the state of every widget it opens; `send_update` sends a change as a browser would and
returns what the kernel redraws.
"""
from __future__ import annotations

import queue
import time
from collections.abc import Callable

from jupyter_client.manager import KernelManager


def start_kernel(folder) -> tuple[KernelManager, object]:
    manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(folder / "socket"))
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    return manager, client


def stop_kernel(manager: KernelManager, client) -> None:
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def open_widgets(kernel, code: str) -> dict[str, tuple[str, dict]]:
    """Run `code`; return (comm id, latest state) of each widget it opened, under its model name
    (the first of each kind, such as "IntSliderModel") and under its description (such as
    "temperature"), if it has one."""
    opened: dict[str, tuple[str, dict]] = {}
    by_comm: dict[str, dict] = {}

    def hook(msg: dict) -> None:
        content = msg["content"]
        if msg["msg_type"] == "comm_open" and content.get("target_name") == "jupyter.widget":
            state = content["data"]["state"]
            by_comm[content["comm_id"]] = state
            for key in (state["_model_name"], state.get("description")):
                if key and key not in opened:
                    opened[key] = (content["comm_id"], state)
        elif (msg["msg_type"] == "comm_msg" and content["comm_id"] in by_comm
              and content["data"].get("method") == "update"):
            by_comm[content["comm_id"]].update(content["data"]["state"])

    reply = kernel.execute_interactive(code, timeout=180, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    return opened


def send_update(kernel, comm_id: str, state: dict, until: Callable[[str], bool]) -> list[str]:
    """Send a front end's state change; return the string values the kernel sends back to any
    widget, up to and including the first for which `until` is true."""
    data = {"method": "update", "state": state, "buffer_paths": []}
    kernel.shell_channel.send(kernel.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))
    values: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            msg = kernel.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        value = None
        if msg["msg_type"] == "comm_msg":
            value = msg["content"].get("data", {}).get("state", {}).get("value")
        if isinstance(value, str):
            values.append(value)
            if until(value):
                return values
    raise AssertionError(f"the kernel sent no redrawn view; it sent {values}")
