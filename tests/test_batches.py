import numpy as np
import pytest
import torch

from llmcourse.batches import WindowDataset, load_shards, random_batch, token_dtype, window_loader, write_shards
from llmcourse.embeddings import TokenAndPositionEmbedding


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(50257) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(128256) == np.uint32


def test_shards_round_trip_through_memmap(tmp_path):
    docs = ["abc", "de", "fghij" * 10]
    encode = lambda text: [ord(c) - 97 for c in text]
    shards = write_shards(docs, encode, vocab_size=27, out_dir=tmp_path, separator=26, shard_tokens=16)
    assert len(shards) > 1
    tokens = load_shards(tmp_path)
    expected = [t for d in docs for t in encode(d) + [26]]
    assert tokens.tolist() == expected and tokens.dtype == np.uint16


def test_truncated_shard_is_detected(tmp_path):
    write_shards(["abcdef"], lambda t: [1] * len(t), 5, tmp_path, shard_tokens=4)
    first = sorted(tmp_path.glob("shard_*.bin"))[0]
    first.write_bytes(first.read_bytes()[:-2])
    with pytest.raises(ValueError, match="do not match"):
        load_shards(tmp_path)


def test_windows_are_shifted_by_one_and_cover_the_tokens():
    tokens = torch.arange(100)
    ds = WindowDataset(tokens, context_length=10)
    for x, y in ds:
        assert torch.equal(y, x + 1)
    assert len(ds) == 9
    xb, yb = next(iter(window_loader(tokens, 10, batch_size=4)))
    assert xb.shape == yb.shape == (4, 10) and torch.equal(yb, xb + 1)


def test_random_batch_is_reproducible():
    tokens = np.arange(1000)
    a = random_batch(tokens, 8, 16, torch.Generator().manual_seed(0))
    b = random_batch(tokens, 8, 16, torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], a[0] + 1)


def test_embeddings_add_position_vectors():
    emb = TokenAndPositionEmbedding(20, 8, 4)
    ids = torch.tensor([[3, 3, 3]])
    out = emb(ids)
    assert torch.allclose(out[0, 1] - out[0, 0], emb.position.weight[1] - emb.position.weight[0])


@pytest.mark.parametrize("call, error, message", [
    (lambda: WindowDataset(torch.arange(5), 8), ValueError, "cannot fill"),
    (lambda: TokenAndPositionEmbedding(10, 4, 2)(torch.zeros(1, 5, dtype=torch.long)), ValueError, "longer than"),
    (lambda: TokenAndPositionEmbedding(10, 4, 2)(torch.tensor([[10]])), ValueError, r"\[0, 10\)"),
    (lambda: TokenAndPositionEmbedding(10, 4, 2)(torch.zeros(1, 2)), TypeError, "integer"),
])
def test_bad_input_is_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_empty_documents_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="no tokens"):
        write_shards([""], lambda t: [], 5, tmp_path)
    assert not list(tmp_path.glob("shard_*"))
