import pickle
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from llmcourse.data.batches import (
    TokenShards,
    WindowDataset,
    load_shards,
    random_batch,
    token_dtype,
    window_loader,
    write_shards,
)
from llmcourse.model.embeddings import TokenAndPositionEmbedding


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(50257) == np.uint16 and token_dtype(65536) == np.uint16
    assert token_dtype(128256) == np.uint32


def test_shards_round_trip_through_memmap(tmp_path):
    docs = ["abc", "de", "fghij" * 10]
    def encode(text: str) -> list[int]:
        return [ord(c) - 97 for c in text]

    shards = write_shards(docs, encode, vocab_size=27, out_dir=tmp_path, separator=26,
                          shard_tokens=16)
    assert len(shards) > 1
    tokens = load_shards(tmp_path)
    expected = [t for d in docs for t in encode(d) + [26]]
    assert tokens.n_shards == len(shards) and len(tokens) == len(expected)
    assert tokens[:].tolist() == expected and np.asarray(tokens).tolist() == expected
    assert tokens.dtype == np.uint16 and tokens[:].dtype == np.uint16
    assert [tokens[i] for i in range(-3, 0)] == expected[-3:]


def test_truncated_shard_is_detected(tmp_path):
    write_shards(["abcdef"], lambda t: [1] * len(t), 5, tmp_path, shard_tokens=4)
    first = sorted(tmp_path.glob("shard_*.bin"))[0]
    first.write_bytes(first.read_bytes()[:-2])
    with pytest.raises(ValueError, match="do not match"):
        load_shards(tmp_path)


@pytest.fixture
def small_shards(tmp_path):
    """100 distinct ids (0..99) in shards of 7, so that most windows cross a shard boundary."""
    documents = [list(range(i, i + 10)) for i in range(0, 100, 10)]
    write_shards(documents, lambda ids: ids, 100, tmp_path, shard_tokens=7)
    return load_shards(tmp_path), list(range(100))


def test_windows_that_straddle_shards_are_the_ids_in_order(small_shards):
    tokens, reference = small_shards
    assert tokens.n_shards == 15
    for T, stride in [(10, 10), (5, 1), (20, 3)]:
        dataset = WindowDataset(tokens, T, stride)
        assert len(dataset) == (100 - T - 1) // stride + 1
        for i in range(len(dataset)):
            x, y = dataset[i]
            start = i * stride
            assert x.dtype == torch.int64
            assert x.tolist() == reference[start:start + T]
            assert y.tolist() == reference[start + 1:start + T + 1]


def test_random_batches_and_loader_read_contiguous_windows_from_shards(small_shards):
    tokens, reference = small_shards
    x, y = random_batch(tokens, 32, 12, torch.Generator().manual_seed(0))
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        start = reference.index(row_x[0])  # ids are distinct: the first one says where a row starts
        assert row_x == reference[start:start + 12] and row_y == reference[start + 1:start + 13]
    rows = [row for xb, _ in window_loader(tokens, 9, batch_size=2) for row in xb.tolist()]
    assert len(rows) == 10  # 11 windows, and drop_last leaves out the odd one
    assert all(row == reference[row[0]:row[0] + 9] and row[0] % 9 == 0 for row in rows)
    assert len({row[0] for row in rows}) == 10


def test_shards_pickle_by_path_not_by_content(small_shards, tmp_path):
    tokens, reference = small_shards
    data = pickle.dumps(tokens)
    assert b"shard_00000.bin" in data and len(data) < 2_000
    assert pickle.loads(data)[:].tolist() == reference


# Runs in a fresh interpreter under RLIMIT_DATA, which caps the private memory a process allocates
# (heap and anonymous maps) but not read-only maps of files: so the limit can sit far below the size
# of the shards.
MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    import numpy as np, torch
    from llmcourse.data.batches import WindowDataset, load_shards, random_batch, window_loader

    def private_bytes():
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith("VmData")) * 1024

    torch.stack([torch.from_numpy(np.arange(8).astype(np.int64))] * 2)  # first-use allocations
    limit = private_bytes() + int(sys.argv[2]) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    tokens = load_shards(sys.argv[1])
    dataset = WindowDataset(tokens, 256)
    windows = [dataset[i] for i in range(0, len(dataset), len(dataset) // 20)]
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(tokens, 8, 256, generator) for _ in range(5)]
    loader = iter(window_loader(tokens, 256, batch_size=8))
    batches += [next(loader) for _ in range(5)]
    last = dataset[len(dataset) - 1][1][-1].item()  # the id at position len(dataset) * 256
    try:
        np.asarray(tokens)  # every id at once: the limit must forbid it, or the test proves nothing
        fits = "fits"
    except MemoryError:
        fits = "too-large"
    print(len(tokens), len(dataset), last, fits)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA and /proc/self/status are Linux's")
def test_training_windows_come_from_shards_larger_than_the_memory_allowed(tmp_path):
    """256 MiB of uint16 shards (1 GiB once widened to int64), read with 64 MiB of private
    memory."""
    folder, shard, n_shards = tmp_path / "shards", 1 << 25, 4
    try:
        write_shards(range(n_shards), lambda k: np.arange(shard) % 50_000 + k, 50_004, folder,
                     shard_tokens=shard)
        size_mib = sum(p.stat().st_size for p in folder.glob("shard_*.bin")) / 2**20
        result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(folder), "64"],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        n, windows, last, fits = result.stdout.split()
        assert int(n) == n_shards * shard and size_mib == 256 and fits == "too-large"
        shard_k, offset = divmod(int(windows) * 256, shard)
        assert int(last) == offset % 50_000 + shard_k  # the id written there
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    (lambda: WindowDataset(torch.zeros(4, 4), 2), ValueError, "1-D"),
    (lambda: TokenAndPositionEmbedding(10, 4, 2)(torch.zeros(1, 5, dtype=torch.long)), ValueError,
     "longer than"),
    (lambda: TokenAndPositionEmbedding(10, 4, 2)(torch.tensor([[10]])), ValueError, r"\[0, 10\)"),
    (lambda: TokenAndPositionEmbedding(10, 4, 2)(torch.zeros(1, 2)), TypeError, "integer"),
])
def test_bad_input_is_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_shard_requests_are_explained(tmp_path, small_shards):
    tokens, _ = small_shards
    with pytest.raises(ValueError, match="outside the vocabulary"):
        write_shards(["ab"], lambda t: [3, -1], 5, tmp_path / "negative")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        write_shards(["ab"], lambda t: [3, 5], 5, tmp_path / "too-large")
    with pytest.raises(ValueError, match="not a shard directory"):
        load_shards(tmp_path / "nothing-here")
    with pytest.raises(IndexError, match="token 100 of 100"):
        tokens[100]
    with pytest.raises(ValueError, match="step 1"):
        tokens[::2]
    with pytest.raises(ValueError, match="one size per shard"):
        TokenShards([], "uint16", [])


def test_empty_documents_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="no tokens"):
        write_shards([""], lambda t: [], 5, tmp_path)
    assert not list(tmp_path.glob("shard_*"))
