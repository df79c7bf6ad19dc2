"""The training-curve view: the figure it draws, and its live path in a real kernel, where a short
run must show one figure and then redraw that same display while the model trains."""
import json

import numpy as np
import pytest
from jupyter_client.manager import KernelManager

from llmcourse.viz.training import curves_figure

TRAIN_IN_KERNEL = """
import numpy as np, torch
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.training import Trainer, get_train_preset
from llmcourse.viz.training import LiveCurves
torch.manual_seed(0)
tokens = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint16)
curves = LiveCurves("smoke", every=0)
trainer = Trainer(GPT(get_preset("tiny", n_layer=1, vocab_size=256, context_length=32)),
                  tokens, tokens,
                  get_train_preset("smoke", precision="fp32", max_steps=6, eval_every=3),
                  callbacks=[curves], progress=False)
trainer.fit()
curves.close()
"""


def test_live_curves_redraw_one_display_while_training(tmp_path):
    manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "socket"))
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        messages = []
        reply = client.execute_interactive(TRAIN_IN_KERNEL, timeout=300,
                                           output_hook=messages.append)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    shown = [m for m in messages if m["msg_type"] == "display_data"]
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    # 6 steps + 2 evaluations + the final frame, one display
    assert len(shown) == 1 and len(updates) >= 8
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in updates)
    first = json.loads(json.dumps(shown[0]["content"]["data"]["application/vnd.plotly.v1+json"]))
    last = updates[-1]["content"]["data"]["application/vnd.plotly.v1+json"]
    # the curve grew step by step
    assert len(first["data"][0]["x"]) == 1 and len(last["data"][0]["x"]) == 6
    assert any(trace["name"] == "smoke: validation" for trace in last["data"])


def test_groups_menu_shows_one_comparison_at_a_time():
    def run(lr):
        return [{"kind": "train", "step": s, "tokens": 64 * s, "loss": float(np.exp(-lr * s)),
                 "lr": lr}
                for s in range(1, 5)]

    fig = curves_figure({"lr 1e-3": run(1e-3), "lr 3e-3": run(3e-3), "no warmup": run(2e-3)},
                        groups={"learning rates": ["lr 1e-3", "lr 3e-3"], "warmup": ["no warmup"]})
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["learning rates", "warmup"]
    names = [t.name for t in fig.data]
    for button, members in zip(buttons, (["lr 1e-3", "lr 3e-3"], ["no warmup"]), strict=True):
        visible = button.args[0]["visible"]
        assert {n.split(":")[0] for n, v in zip(names, visible, strict=True) if v} == set(members)
    # opens on the first group
    assert [t.visible for t in fig.data] == buttons[0].args[0]["visible"]


def test_smoothing_keeps_the_raw_losses_on_hover():
    history = [{"kind": "train", "step": s, "tokens": s, "loss": float(v), "lr": 1.0}
               for s, v in enumerate([4.0, 2.0, 3.0], start=1)]
    train = curves_figure({"r": history}, smoothing=0.5).data[0]
    assert list(train.customdata) == [4.0, 2.0, 3.0]
    # debiased: the first point is the first loss, not 0.5 * it
    assert train.y[0] == pytest.approx(4.0)


def test_metrics_figure_draws_a_panel_per_logged_metric():
    """DPO's statistics, as the trainer logs them: one panel each, training (smoothed, raw on hover)
    and held-out values, and a menu over groups of runs."""
    from llmcourse.viz.training import metrics_figure

    def run(scale):
        steps = [{"kind": "train", "step": s, "loss": 0.7 - scale * s, "margin": scale * s,
                  "accuracy": min(1.0, 0.5 + scale * s)} for s in range(1, 6)]
        return steps + [{"kind": "eval", "step": 5, "val_loss": 0.6, "val_margin": 0.2}]

    fig = metrics_figure({"a": run(0.01), "b": run(0.05)},
                         {"loss": "DPO loss", "margin": "margin", "accuracy": "accuracy"},
                         groups={"a": ["a"], "both": ["a", "b"]})
    names = [(t.name, t.yaxis) for t in fig.data]
    assert ("a", "y") in names and ("a", "y2") in names and ("a", "y3") in names
    held = [t for t in fig.data if t.name == "b: held out"]
    assert [list(t.y) for t in held] == [[0.6], [0.2]]  # val_loss and val_margin; no val_accuracy
    raw = next(t for t in fig.data if t.name == "b" and t.yaxis == "y2").customdata
    assert list(raw) == pytest.approx([0.05 * s for s in range(1, 6)])
    assert fig.layout.yaxis2.title.text == "margin"
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["a", "both"]
    assert all(t.visible for t in fig.data if t.legendgroup == "a")
    assert not any(t.visible for t in fig.data if t.legendgroup == "b")
