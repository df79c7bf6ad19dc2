"""DPO against TRL (trl 1.16, DPOTrainer with loss_type "sigmoid", the default): on the same model
and batch, our per-sequence log-probabilities equal TRL's, and our loss, rewards, margins,
accuracies and log-probabilities equal what its trainer computes and logs."""
import tempfile

import pytest
import torch

from llmcourse.dpo.loss import dpo_loss, sequence_logprobs
from llmcourse.finetune.collate import encode_example, pad_batch
from llmcourse.model.hf_checkpoint import load_hf_checkpoint

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

V = 64
PAIRS = [{"prompt": "t1 t2 t3 ", "chosen": "t4 t5", "rejected": "t6"},
         {"prompt": "t7 t8 ", "chosen": "t9", "rejected": "t10 t11 t12"},
         {"prompt": "t13 ", "chosen": "t14 t15 t16 t17", "rejected": "t18 t19"}]


def word_tokenizer():
    """A word-level tokenizer, "t5" -> 5, built locally: nothing is downloaded."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"t{i}": i for i in range(V - 2)} | {"<pad>": V - 2, "</s>": V - 1}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>",
                                                pad_token="<pad>")


def gpt2(seed: int):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=V, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                     resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=V - 1,
                                     eos_token_id=V - 1, pad_token_id=V - 2)
    return transformers.GPT2LMHeadModel(config).eval()


def ours(model):
    """The same weights in llmcourse's GPT, through a real safetensors checkpoint."""
    folder = tempfile.mkdtemp()
    model.save_pretrained(folder)
    return load_hf_checkpoint(folder).eval()


@pytest.fixture(scope="module")
def trained_by_trl():
    policy, reference = gpt2(0), gpt2(2)
    args = trl.DPOConfig(output_dir=tempfile.mkdtemp(), beta=0.3, report_to="none",
                         per_device_train_batch_size=len(PAIRS), use_cpu=True,
                         precompute_ref_log_probs=False, max_length=None, bf16=False)
    assert args.loss_type == ["sigmoid"]  # the paper's loss, TRL's default
    trainer = trl.DPOTrainer(model=policy, ref_model=reference, args=args,
                             train_dataset=datasets.Dataset.from_list(PAIRS),
                             processing_class=word_tokenizer())
    rows = [trainer.train_dataset[i] for i in range(len(PAIRS))]
    batch = trainer.data_collator(rows)
    with torch.no_grad():
        policy_logps = trainer.compute_ref_log_probs(trainer.model, batch)
        reference_logps = trainer.compute_ref_log_probs(trainer.ref_model, batch)
        loss = trainer._compute_loss(trainer.model, batch, False)
    mode = "train" if trainer.model.training else "eval"  # where TRL's trainer logs this batch
    logged = {k: v[-1] for k, v in trainer._metrics[mode].items()}
    return rows, policy, reference, policy_logps, reference_logps, loss, logged


def our_logps(model, rows):
    """(chosen, rejected) summed log-probabilities, our way: chosen rows then rejected rows."""
    examples = [encode_example(r["prompt_ids"], r[answer], 32)
                for answer in ("chosen_ids", "rejected_ids") for r in rows]
    batch = pad_batch(examples, pad_id=V - 2)
    with torch.no_grad():
        logps = sequence_logprobs(ours(model), batch.ids, batch.targets, batch.mask,
                                  batch.positions)
    return logps.chunk(2)


def test_sequence_log_probabilities_equal_trl(trained_by_trl):
    rows, policy, reference, policy_logps, reference_logps, *_ = trained_by_trl
    assert rows[0]["chosen_ids"][-1] == V - 1  # TRL appends the end token: it is part of the answer
    for model, theirs in ((policy, policy_logps), (reference, reference_logps)):
        for mine, trls in zip(our_logps(model, rows), theirs, strict=True):
            torch.testing.assert_close(mine, trls, rtol=1e-5, atol=1e-5)


def test_loss_rewards_margins_and_accuracy_equal_trl(trained_by_trl):
    rows, policy, reference, _, _, loss, logged = trained_by_trl
    chosen, rejected = our_logps(policy, rows)
    ref_chosen, ref_rejected = our_logps(reference, rows)
    out = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.3)
    assert out.loss.item() == pytest.approx(loss.item(), rel=1e-5)
    close = {"rel": 1e-4, "abs": 1e-6}
    assert out.chosen_rewards.mean().item() == pytest.approx(logged["rewards/chosen"], **close)
    assert out.rejected_rewards.mean().item() == pytest.approx(logged["rewards/rejected"], **close)
    assert out.margins.mean().item() == pytest.approx(logged["rewards/margins"], **close)
    assert out.accuracy.item() == pytest.approx(logged["rewards/accuracies"])
    assert chosen.mean().item() == pytest.approx(logged["logps/chosen"], rel=1e-5)
    assert rejected.mean().item() == pytest.approx(logged["logps/rejected"], rel=1e-5)
    assert 0 < out.accuracy.item() < 1  # the comparison is not a trivial all-or-nothing one
