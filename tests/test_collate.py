"""The masked loss, padding and packing, against the examples run one at a time, unpadded."""
import pytest
import torch
import torch.nn.functional as F

from llmcourse.finetune.collate import IGNORE, encode_example, pack_examples, pad_batch
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(get_preset("tiny", n_layer=2, vocab_size=100, context_length=32)).eval()


@pytest.fixture(scope="module")
def examples():
    generator = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(1, 100, (n,), generator=generator).tolist()

    return [encode_example(ids(p), ids(r), 32) for p, r in ((5, 3), (9, 1), (2, 7), (12, 6))]


def one_at_a_time(model, examples) -> torch.Tensor:
    """The token-weighted mean of the response losses, each example alone and unpadded: the
    reference."""
    total, count = torch.zeros((), dtype=torch.float64), 0
    for e in examples:
        logits = model(torch.tensor([e.inputs]))
        targets = torch.tensor(e.targets)
        keep = targets != IGNORE
        total += F.cross_entropy(logits[0][keep].double(), targets[keep], reduction="sum")
        count += int(keep.sum())
    return total / count


def test_only_the_response_is_a_target():
    e = encode_example([1, 2, 3, 4], [5, 6], 16)
    assert e.inputs == [1, 2, 3, 4, 5] and e.targets == [IGNORE, IGNORE, IGNORE, 5, 6]


def test_a_padded_batch_has_the_unpadded_loss(model, examples):
    batch = pad_batch(examples, pad_id=0)
    assert batch.ids.shape == (4, max(len(e.inputs) for e in examples))
    _, loss = model(batch.ids, batch.targets, mask=batch.mask)
    reference = one_at_a_time(model, examples)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    # right padding: no real token attends to a later pad, so the mask changes no real output
    _, unmasked = model(batch.ids, batch.targets)
    assert unmasked.item() == pytest.approx(loss.item(), rel=1e-6)
    # whatever the pad id is
    _, other_pad = model(pad_batch(examples, pad_id=57).ids, batch.targets)
    assert other_pad.item() == pytest.approx(loss.item(), rel=1e-6)


def test_a_packed_batch_has_the_unpadded_loss(model, examples):
    batch = pack_examples(examples, 32, pad_id=0)
    assert batch.ids.shape[0] < len(examples)  # several examples share a row
    _, loss = model(batch.ids, batch.targets, mask=batch.mask, positions=batch.positions)
    assert loss.item() == pytest.approx(one_at_a_time(model, examples).item(), rel=1e-5)
    # without the mask and positions the examples would see one another: a different loss
    _, leaky = model(batch.ids, batch.targets)
    assert leaky.item() != pytest.approx(loss.item(), rel=1e-4)


def test_too_long_is_refused_or_cut_by_the_rule():
    refusal = "example 7: 10 prompt \\+ 4 response tokens do not fit a context of 8"
    with pytest.raises(ValueError, match=refusal):
        encode_example(list(range(10)), [1, 2, 3, 4], 8, index=7)
    cut = encode_example(list(range(10)), [1, 2, 3, 4], 8, too_long="truncate_prompt")
    assert cut.truncated == 5 and cut.inputs == [5, 6, 7, 8, 9, 1, 2, 3]
    assert cut.targets[-4:] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="the response alone"):
        encode_example([1], list(range(12)), 8, too_long="truncate_prompt")
    with pytest.raises(ValueError, match="the response is empty"):
        encode_example([1, 2], [], 8)
