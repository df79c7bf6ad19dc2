"""DPO in the course's own pipeline: preference records checked as they are read, pairs made from
the tasks, the reference's log-probabilities computed once, and the Part III trainer stepping the
DPO objective with its statistics logged."""
import copy
import json
import math

import pytest
import torch

from llmcourse.dpo.loss import dpo_loss, sequence_logprobs
from llmcourse.dpo.pairs import make_pairs
from llmcourse.dpo.preferences import PreferenceError, as_record, load_preferences, preferences
from llmcourse.dpo.training import (
    DPOObjective,
    PreferenceBatches,
    encode_pairs,
    pair_batch,
    ranking_accuracy,
    reference_logprobs,
)
from llmcourse.training import Trainer, get_train_preset
from tests.test_sft import CONVERSATIONS, setup

RECORDS = [{"prompt": "Reverse the words.\n\nking queen", "chosen": "queen king",
            "rejected": "king queen"},
           {"prompt": [{"role": "user", "content": "Say the word twice.\n\nhall"}],
            "chosen": [{"role": "assistant", "content": "hall hall"}],
            "rejected": [{"role": "assistant", "content": "hall"}]}]


def test_preference_records_are_checked_and_named():
    pairs = preferences(RECORDS)
    assert [p.chosen for p in pairs] == ["queen king", "hall hall"]
    assert preferences([as_record(p) for p in pairs]) == pairs  # the record form round-trips
    bad = [({"prompt": "Add.", "chosen": "5"}, "record 1: missing rejected"),
           ({"prompt": "Add.", "chosen": "5", "rejected": 6},
            "record 1: 'rejected' must be text"),
           ({"prompt": "Add.", "chosen": " 5", "rejected": "5 "},
            "record 1: the chosen and rejected"),
           ({"prompt": "", "chosen": "5", "rejected": "6"}, "record 1: 'prompt' is empty"),
           ({"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "5", "rejected": "6"},
            "record 1: the prompt must end with the user's turn"),
           ("not a record", "record 1: expected an object")]
    for record, message in bad:
        with pytest.raises(PreferenceError, match=message):
            preferences([RECORDS[0], record])


def test_a_preference_file_loads(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    assert len(load_preferences(path)) == 2
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + '\n\n{"prompt": "Add."}\n')
    with pytest.raises(PreferenceError, match="pairs.jsonl, line 4: missing chosen, rejected"):
        load_preferences(path)


def test_the_loss_starts_at_log_two_and_prefers_the_chosen_answer():
    logps = torch.tensor([-4.0, -6.0])
    at_start = dpo_loss(logps, logps + 1, logps, logps + 1, beta=0.5)  # policy == reference
    assert at_start.loss.item() == pytest.approx(math.log(2))
    assert at_start.accuracy.item() == 0  # a tie is not a win, as in TRL
    better = dpo_loss(logps + 1, logps, logps, logps, beta=0.5)
    assert better.loss < at_start.loss and better.accuracy.item() == 1
    assert better.margins.tolist() == pytest.approx([0.5, 0.5])  # beta times the log-ratios' gap
    with pytest.raises(ValueError, match="four"):
        dpo_loss(logps, logps[:1], logps, logps)


def test_summed_and_averaged_log_probabilities():
    model, tokenizer = setup()
    pairs = encode_pairs(preferences(RECORDS), tokenizer, 32)
    batch = pair_batch(pairs, pad_id=0)
    with torch.no_grad():
        summed = sequence_logprobs(model, batch.ids, batch.targets, batch.mask, batch.positions)
        mean = sequence_logprobs(model, batch.ids, batch.targets, batch.mask, batch.positions,
                                 average=True)
        # one row alone, unpadded, by hand: the log-softmax at each answer token, summed
        chosen = pairs[0][0]
        logits = model(torch.tensor([chosen.inputs]))[0].log_softmax(-1)
        by_hand = sum(logits[t, y] for t, y in enumerate(chosen.targets) if y != -100)
    assert summed[0].item() == pytest.approx(by_hand.item(), rel=1e-5)
    counts = (batch.targets != -100).sum(-1)
    torch.testing.assert_close(mean, summed / counts)


def tuned_model():
    """The tiny model of the SFT tests, fine-tuned, as DPO's starting point."""
    from llmcourse.finetune.sft import InstructionBatches, encode_conversations

    model, tokenizer = setup()
    data = InstructionBatches(encode_conversations(CONVERSATIONS, tokenizer, 32), pad_id=0)
    cfg = get_train_preset("smoke", batch_size=4, context_length=32, max_steps=60, lr=3e-3,
                           warmup_steps=5, eval_every=0, precision="fp32")
    Trainer(model, data, None, cfg, progress=False).fit()
    return model, tokenizer


def test_the_policy_starts_where_the_reference_is_in_any_precision():
    """The reference's log-probabilities and the policy's first forward pass compute alike: no
    dropout in either, and the trainer's precision in both. So the first DPO loss is log 2 for
    a model with dropout, trained in bf16."""
    sft, tokenizer = setup()
    for module in sft.modules():  # dropout of 0.3 everywhere, as a config's dropout=0.3 sets it
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.3
        elif isinstance(getattr(module, "dropout", None), float):  # attention's, a rate
            module.dropout = 0.3
    assert sum(isinstance(getattr(m, "dropout", None), float) for m in sft.modules()) > 0
    pairs = encode_pairs(preferences(RECORDS), tokenizer, 32)
    data = PreferenceBatches(pairs, pad_id=0,
                             reference=reference_logprobs(sft, pairs, pad_id=0, precision="bf16"))
    cfg = get_train_preset("smoke", batch_size=4, context_length=32, max_steps=1,
                           warmup_steps=0, precision="bf16")
    trainer = Trainer(DPOObjective(copy.deepcopy(sft), beta=0.5), data, None, cfg, progress=False)
    assert trainer.train_step()["loss"] == pytest.approx(math.log(2), abs=1e-6)


def test_dpo_trains_through_the_trainer_logs_its_statistics_and_resumes(tmp_path):
    sft, tokenizer = tuned_model()
    pairs = encode_pairs(preferences(RECORDS), tokenizer, 32)
    reference = reference_logprobs(sft, pairs, pad_id=0)
    assert reference.shape == (2, 2)
    data = PreferenceBatches(pairs, pad_id=0, reference=reference)
    cfg = get_train_preset("smoke", batch_size=4, context_length=32, max_steps=30, lr=1e-3,
                           warmup_steps=2, eval_every=10, precision="fp32")
    trainer = Trainer(DPOObjective(copy.deepcopy(sft), beta=0.5), data, data, cfg, progress=False)
    history = trainer.fit()
    steps = [m for m in history if m["kind"] == "train"]
    # the policy starts as the reference
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert steps[0]["accuracy"] == 0 and steps[-1]["accuracy"] == 1
    assert steps[-1]["margin"] > 0 and steps[-1]["loss"] < 0.5
    assert {"reward_chosen", "reward_rejected", "logp_chosen", "logp_rejected"} <= set(steps[-1])
    evals = [m for m in history if m["kind"] == "eval"]
    assert evals[-1]["val_accuracy"] == 1 and "val_margin" in evals[-1]
    assert ranking_accuracy(trainer.model.policy, pairs, 0) >= ranking_accuracy(sft, pairs, 0)
    # the reference is never recomputed: it is the data's, and DPO without it is refused
    plain = pair_batch(pairs, 0)
    with pytest.raises(ValueError, match="reference"):
        trainer.model(plain.ids, plain.targets, plain.mask, plain.positions)
    # exact resume, as for pretraining and SFT
    Trainer(DPOObjective(copy.deepcopy(sft), beta=0.5), data, data, cfg, out_dir=tmp_path,
            progress=False).fit(stop_after=12)
    resumed = Trainer(DPOObjective(copy.deepcopy(sft), beta=0.5), data, data, cfg, out_dir=tmp_path,
                      resume=True, progress=False)
    resumed.fit()
    pairs_of_weights = zip(resumed.model.parameters(), trainer.model.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs_of_weights)


def test_pairs_reject_the_models_own_mistakes():
    from llmcourse.finetune.records import alpaca

    sft, tokenizer = tuned_model()
    asked = CONVERSATIONS + alpaca([{"instruction": "Reverse the words.", "input": "hall court",
                                     "output": "court hall", "task": "reverse"},
                                    {"instruction": "Say the word twice.", "input": "king",
                                     "output": "king king", "task": "twice"}])
    made = make_pairs(sft, tokenizer, asked * 2, samples=4, temperature=1.5, seed=0)
    assert made.on_policy + made.corrupted == 8
    assert made.on_policy > 0  # at a high temperature the tiny model errs
    for pair, conversation in zip(made.pairs, asked * 2, strict=True):
        assert pair.chosen == conversation.answer and pair.rejected.strip() != pair.chosen
    more = make_pairs(sft, tokenizer, asked, samples=8, temperature=1.5, seed=0, per_prompt=2)
    per_prompt = [[p.rejected for p in more.pairs if p.prompt == c.prompt_messages] for c in asked]
    assert all(1 <= len(r) <= 2 and len(set(r)) == len(r) for r in per_prompt)  # distinct mistakes
    assert any(len(r) == 2 for r in per_prompt)
    with pytest.raises(ValueError, match="single answer"):  # nothing plausible to reject
        make_pairs(sft, tokenizer, CONVERSATIONS[:1] * 2, samples=1, temperature=0)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        PreferenceBatches(encode_pairs(made.pairs[:2], tokenizer, 32), 0, torch.zeros(3, 2))


def test_a_reward_model_learns_the_pairs_by_bradley_terry():
    from llmcourse.dpo.reward import RewardModel, pair_accuracy, preference_probability

    sft, tokenizer = tuned_model()
    pairs = encode_pairs(preferences(RECORDS), tokenizer, 32)
    reward_model = RewardModel(sft)
    assert pair_accuracy(reward_model, pairs, 0) == 0  # every answer starts at reward 0: ties
    batch = pair_batch(pairs, 0)
    _, loss = reward_model(batch.ids, batch.targets, batch.mask, batch.positions)
    assert loss.item() == pytest.approx(math.log(2))  # -log P = -log 1/2
    data = PreferenceBatches(pairs, pad_id=0)  # no reference: a reward model needs none
    cfg = get_train_preset("smoke", batch_size=4, context_length=32, max_steps=40, lr=1e-3,
                           warmup_steps=2, eval_every=0, precision="fp32")
    history = Trainer(reward_model, data, None, cfg, progress=False).fit()
    assert history[-1]["accuracy"] == 1 and history[-1]["loss"] < 0.3
    assert pair_accuracy(reward_model, pairs, 0) == 1
    with torch.no_grad():
        scores = reward_model.score(batch.ids, batch.targets, batch.mask, batch.positions)
        chosen, rejected = scores.chunk(2)
        _, loss = reward_model(batch.ids, batch.targets, batch.mask, batch.positions)
    expected = -preference_probability(chosen.double(), rejected.double()).log().mean().item()
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    assert not torch.equal(sft.tok_emb.weight, reward_model.body.tok_emb.weight)  # a copy trained


def test_the_cached_sft_model_is_checked_when_loaded(tmp_path):
    """The SFT model's cache entry is read with the course model's checks: a truncated weights file
    is refused, with the file named, rather than loaded."""
    import shutil

    from llmcourse.data.corpus import load_corpus
    from llmcourse.finetune import recipe
    from llmcourse.finetune.sft import InstructionBatches, encode_conversations
    from llmcourse.training.course_model import CourseModelError, read_entry

    sft = recipe.sft_model()  # kept by the book build (chapter 8) or trained now
    assert len(recipe.sft_tasks(load_corpus("shakespeare")).train) == recipe.SFT_EXAMPLES
    again = recipe.sft_model()
    assert again.from_cache and again.path == sft.path
    pairs_of_weights = zip(again.model.parameters(), sft.model.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs_of_weights)
    assert again.tokenizer.n_vocab == sft.model.cfg.vocab_size
    # only a finished run of the recipe itself may stand in for it
    model, tokenizer = setup()
    data = InstructionBatches(encode_conversations(CONVERSATIONS, tokenizer, 32), 0)
    other = Trainer(model, data, None, recipe.sft_config(max_steps=2, warmup_steps=1),
                    progress=False)
    other.fit()
    assert recipe.keep_sft_model(other, tokenizer, cache=tmp_path / "cache") is False
    assert not (tmp_path / "cache" / "sft_model").exists()
    copy_ = tmp_path / "entry"
    shutil.copytree(sft.path, copy_)
    weights = copy_ / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    key = json.loads((copy_ / "meta.json").read_text())["key"]
    with pytest.raises(CourseModelError, match="model.safetensors"):
        read_entry(copy_, key, copy.deepcopy(sft.model))


def test_the_dpo_cache_key_holds_how_the_pairs_were_sampled(tmp_path, monkeypatch):
    """Pairs sampled another way make another DPO model: its cache entry must differ."""
    from llmcourse.dpo import recipe

    sft_path = tmp_path / "sft"
    key, _ = recipe._entry(sft_path, tmp_path)
    for name in ("TRAIN_SAMPLING", "TEST_SAMPLING"):
        with monkeypatch.context() as patch:
            patch.setattr(recipe, name, {**getattr(recipe, name), "temperature": 0.7})
            assert recipe._entry(sft_path, tmp_path)[0] != key, name
