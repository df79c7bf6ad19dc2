"""The course model's cache: a hit loads the very weights that were trained, a changed recipe or
changed code is a different entry, and a damaged entry is trained again rather than trusted."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import llmcourse.training.course_model as cm
from llmcourse.foundations.bigram import BigramModel
from llmcourse.training.course_model import (
    CourseModelConfig,
    cache_key,
    course_model,
    validation_loss,
)

# A recipe small enough to train in a second or two on the packaged corpus.
SMALL = CourseModelConfig(corpus="tiny", vocab_size=300, n_layer=1, n_head=2, d_model=16,
                          context_length=16, steps=20, batch_size=4)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def load(cache: Path, config: CourseModelConfig = SMALL) -> cm.CourseModel:
    return course_model(config, device="cpu", cache=cache, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, load(cache)


def test_first_call_trains_and_second_loads_the_identical_model(trained):
    cache, first = trained
    assert not first.from_cache
    second = load(cache)
    assert second.from_cache and second.path == first.path
    assert same_weights(first.model, second.model)
    assert second.model.lm_head.weight is second.model.tok_emb.weight  # the tie survives
    assert second.tokenizer.ranks == first.tokenizer.ranks
    assert second.tokenizer.special_tokens == first.tokenizer.special_tokens
    assert second.metrics == first.metrics
    ids = torch.tensor([first.tokenizer.encode("the cat")])
    with torch.no_grad():
        torch.testing.assert_close(first.model(ids), second.model(ids), rtol=0, atol=0)


def test_training_learned_something_and_the_metrics_are_measured(trained):
    _, result = trained
    losses = result.metrics["train_losses"]
    assert len(losses) == SMALL.steps
    assert np.mean(losses[-5:]) < losses[0]  # the loss fell
    assert result.metrics["uniform_loss"] == pytest.approx(math.log(result.tokenizer.n_vocab))
    assert result.tokenizer.n_vocab == SMALL.vocab_size and result.eot_id == SMALL.vocab_size - 1


def test_a_changed_recipe_is_a_different_entry():
    changed = [SMALL.replace(steps=21), SMALL.replace(lr=SMALL.lr * 2),
               SMALL.replace(corpus="shakespeare"), SMALL.replace(d_model=32)]
    keys = {cache_key(SMALL)} | {cache_key(c) for c in changed}
    assert len(keys) == 1 + len(changed)
    assert cache_key(SMALL) == cache_key(CourseModelConfig(**SMALL.__dict__))


def test_changed_code_is_a_different_entry_and_changed_prose_is_not(monkeypatch):
    import llmcourse.model.gpt

    assert cm.module_source("llmcourse.model.gpt") == Path(llmcourse.model.gpt.__file__).read_text()
    before = cache_key(SMALL)
    real = cm.module_source

    def edited(change):
        return lambda name: change(real(name)) if name == "llmcourse.model.gpt" else real(name)

    monkeypatch.setattr(cm, "module_source", edited(lambda s: s + "\n# a new comment\n"))
    assert cache_key(SMALL) == before
    monkeypatch.setattr(cm, "module_source", edited(lambda s: s.replace('"""', '"""Edit. ', 1)))
    assert cache_key(SMALL) == before
    monkeypatch.setattr(cm, "module_source", edited(lambda s: s.replace("std=0.02", "std=0.03", 1)))
    assert cache_key(SMALL) != before


@pytest.mark.parametrize("damage", ["truncate weights", "flip a weight byte", "edit tokenizer",
                                    "garble meta"])
def test_a_damaged_entry_is_trained_again_with_a_warning(trained, damage):
    cache, first = trained
    weights, tokenizer = first.path / "model.safetensors", first.path / "tokenizer.json"
    if damage == "truncate weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flip a weight byte":
        data = bytearray(weights.read_bytes())
        data[-3] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "edit tokenizer":
        body = json.loads(tokenizer.read_text())
        body["ranks"][-1] = body["ranks"][0]
        tokenizer.write_text(json.dumps(body))
    else:
        (first.path / "meta.json").write_text("{not json")
    with pytest.warns(UserWarning, match="cannot be used.*training it again"):
        again = load(cache)
    assert not again.from_cache
    assert same_weights(again.model, first.model)  # training on the CPU is deterministic
    assert load(cache).from_cache  # and the entry written again is whole


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    result = course_model(SMALL.replace(steps=2), device="cpu", progress=False)
    assert result.path.parent == tmp_path / "course_model"
    assert (result.path / "model.safetensors").exists()


def test_validation_loss_scores_every_token_like_the_bigram_model():
    """A model that is exactly a bigram table must get the bigram model's loss from
    validation_loss: the windows cover every target once, the ragged last one included."""
    V = 7
    # 101 ids, so 100 targets: 6 windows of 16, then one of 4
    ids = np.random.default_rng(0).integers(0, V, 101).astype(np.uint16)
    bigram = BigramModel.fit(torch.as_tensor(ids.astype(np.int64)), V)

    class Table(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = SMALL.model_config()
            self.logp = torch.nn.Parameter(bigram.probs.log().float())

        def forward(self, x, y):
            logits = self.logp[x]
            return logits, torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())

    expected = bigram.loss(torch.as_tensor(ids.astype(np.int64))).item()
    assert validation_loss(Table(), ids, batch_size=4) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("change, message", [
    (dict(vocab_size=256), "vocab_size"), (dict(steps=0), "steps"), (dict(lr=0.0), "lr"),
    (dict(d_model=30, n_head=4), "divisible")])
def test_bad_recipes_are_refused_with_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        SMALL.replace(**change)
