"""Build the course book to static HTML and PDF, with no internet but the package registries.

    python tools/build_book.py            # HTML and PDF
    python tools/build_book.py --html     # HTML only
    python tools/build_book.py --strict   # warnings are errors (the test build)

Third-party JavaScript (plotly.js, require.js, the ipywidgets HTML manager, MathJax) is never committed: it is copied
from the installed plotly package or fetched from the npm registry into book/assets/vendor/ before the build.
Notebooks are executed during the build with LLMCOURSE_BOOK_BUILD=1, which makes llmcourse.viz emit figures as
interactive HTML plus a PNG for the PDF, and with TQDM_DISABLE=1, so that no progress bar lands in a page. Executed
notebooks are cached between builds (jupyter-cache, keyed on each notebook's cells); the cache is dropped whenever
the llmcourse package changes, because a chapter's outputs depend on the package as much as on its cells.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "book" / "assets" / "vendor"
BUILD = ROOT / "_build"
HTML_INDEX = BUILD / "html" / "index.html"
PDF = BUILD / "latex" / "llmcourse.pdf"
CACHE = BUILD / ".jupyter_cache"
CACHE_STAMP = BUILD / ".llmcourse-sources.sha256"
CHAPTER_TIMES = BUILD / "chapter-times.json"  # each chapter's execution time; benchmarks/run.py --only chapters
TEX_APT = ("texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended latexmk texlive-xetex "
           "fonts-freefont-otf fonts-noto-cjk fonts-symbola")
# fonts the PDF needs beyond TeX's own: the body fonts, and the fallbacks for CJK and emoji (book/assets/*.sty)
PDF_FONTS = ("FreeSerif", "Noto Sans CJK SC", "Symbola")
# (npm package, prefix of the files wanted inside its tarball, folder under vendor/); versions match ipywidgets 8
NPM_ASSETS = [
    ("requirejs@2.3.7", "package/require.js", ""),
    ("@jupyter-widgets/html-manager@1.0.6", "package/dist/", ""),
    ("mathjax@3.2.2", "package/es5/", "mathjax"),
]
SKIP_SUFFIXES = (".map",)
# glibc's malloc returns large activation buffers to the system and faults them in again at every step; the
# kernels that execute the chapters use tcmalloc where it is installed (scripts/setup.sh installs it)
TCMALLOC = next(iter(sorted(Path("/usr/lib").glob("*/libtcmalloc_minimal.so.4"))), None)


def _extract(tarball: Path, prefix: str, dest: Path) -> int:
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(prefix) or member.name.endswith(SKIP_SUFFIXES):
                continue
            relative = Path(member.name).name if member.name == prefix else member.name[len(prefix):]
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            count += 1
    return count


def fetch_assets() -> None:
    """Fill book/assets/vendor/ once: plotly.js from the installed plotly, the rest from the npm registry."""
    import plotly

    VENDOR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", VENDOR / "plotly.min.js")
    for spec, prefix, folder in NPM_ASSETS:
        stamp = VENDOR / f".fetched-{spec.replace('/', '_')}"
        if stamp.exists():
            continue
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("The book's JavaScript assets come from the npm registry, but npm is not installed.\n"
                     "Install it (Debian/Ubuntu: apt-get install npm) or run scripts/setup.sh.")
        with tempfile.TemporaryDirectory() as tmp:
            result = subprocess.run([npm, "pack", "--silent", spec, "--pack-destination", tmp],
                                    capture_output=True, text=True)
            tarballs = list(Path(tmp).glob("*.tgz"))
            if result.returncode != 0 or len(tarballs) != 1:
                sys.exit(f"npm pack {spec} failed:\n{result.stderr.strip()}")
            if _extract(tarballs[0], prefix, VENDOR / folder) == 0:
                sys.exit(f"npm package {spec} holds no files under {prefix}")
        stamp.touch()


def check_tex() -> None:
    missing = [tool for tool in ("xelatex", "latexmk", "fc-list") if shutil.which(tool) is None]
    if not missing:
        missing = [f"the font {font!r}" for font in PDF_FONTS
                   if subprocess.run(["fc-list", "-q", font], capture_output=True).returncode != 0]
    if missing:
        sys.exit(f"The PDF needs TeX and some fonts ({', '.join(missing)} not found). On Debian/Ubuntu install "
                 f"them with:\n"
                 f"  apt-get install -y --no-install-recommends {TEX_APT}\n"
                 f"or build the HTML alone with: python tools/build_book.py --html")


def package_digest() -> str:
    """The package's code and the precision setting: either changes what a chapter prints."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "llmcourse").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    digest.update(os.environ.get("LLMCOURSE_PRECISION", "").encode())
    return digest.hexdigest()


def machine() -> dict[str, object]:
    """What decides a chapter's speed: the CPU, its vector and bf16 features, the cores, the precision."""
    import torch

    from llmcourse.training.precision import PRECISION_SETTING, resolve_precision

    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {"cpu": names[0] if names else "unknown CPU", "cores": os.cpu_count(),
            "features": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags],
            "precision": resolve_precision("auto", torch.device("cpu")),
            "setting": os.environ.get(PRECISION_SETTING) or "unset", "allocator": "tcmalloc" if TCMALLOC else "glibc"}


def chapter_times() -> dict[str, object] | None:
    """Each chapter's execution time in seconds, from the execution cache (the last execution of its current
    cells), with the machine that ran them; written to CHAPTER_TIMES for benchmarks/run.py."""
    from jupyter_cache import get_cache

    if not CACHE.exists():
        return None
    latest: dict[str, tuple[float, object]] = {}
    for record in get_cache(CACHE).list_cache_records():
        seconds, path = record.data.get("execution_seconds"), Path(record.uri)
        if seconds is not None and path.parent.name == "book":
            if path.name not in latest or record.created > latest[path.name][1]:
                latest[path.name] = (seconds, record.created)
    if not latest:
        return None
    times = {"machine": machine(), "date": max(c for _, c in latest.values()).strftime("%Y-%m-%d"),
             "chapters": {name.removesuffix(".ipynb"): round(latest[name][0], 1) for name in sorted(latest)}}
    CHAPTER_TIMES.write_text(json.dumps(times, indent=1) + "\n")
    return times


def print_times(times: dict) -> None:
    m = times["machine"]
    print(f"[build_book] chapter execution (seconds) on {m['cpu']}, {m['cores']} cores "
          f"({', '.join(m['features']) or 'no AVX2'}); precision auto = {m['precision']} "
          f"(LLMCOURSE_PRECISION {m['setting']}), {m['allocator']} malloc:")
    for name, seconds in times["chapters"].items():
        print(f"  {name:<24} {seconds:>6.0f}")
    print(f"  {'all chapters':<24} {sum(times['chapters'].values()):>6.0f}")


def drop_stale_executions() -> None:
    """jupyter-cache re-runs a notebook only when its cells change; re-run them all when the package changed."""
    digest = package_digest()
    if CACHE.exists() and (not CACHE_STAMP.exists() or CACHE_STAMP.read_text() != digest):
        print("[build_book] the llmcourse package changed since the last build: executing every notebook again")
        shutil.rmtree(CACHE)
    BUILD.mkdir(exist_ok=True)
    CACHE_STAMP.write_text(digest)


def jupyter_book(builder: str, strict: bool) -> None:
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--builder", builder]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    env = {"HF_HUB_OFFLINE": "1", **os.environ, "LLMCOURSE_BOOK_BUILD": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "TQDM_DISABLE": "1"}
    if TCMALLOC is not None and "LD_PRELOAD" not in env:
        env["LD_PRELOAD"] = str(TCMALLOC)  # the kernels train faster with it (book/appendix_benchmarks.md)
    start = time.time()
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(f"jupyter-book build --builder {builder} failed (exit {result.returncode}); see the log above")
    print(f"[build_book] {builder} built in {time.time() - start:.0f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--html", action="store_true", help="build the HTML only")
    parser.add_argument("--pdf", action="store_true", help="build the PDF only")
    parser.add_argument("--strict", action="store_true", help="turn warnings into errors")
    args = parser.parse_args(argv)
    html, pdf = (True, True) if args.html == args.pdf else (args.html, args.pdf)
    if pdf:
        check_tex()  # fail before spending minutes on the HTML
    fetch_assets()
    drop_stale_executions()
    if html:
        jupyter_book("html", args.strict)
        print(f"HTML: {HTML_INDEX}")
    if pdf:
        jupyter_book("pdflatex", args.strict)
        if not PDF.exists():
            sys.exit(f"the PDF build finished but {PDF} is missing")
        print(f"PDF:  {PDF}")
    times = chapter_times()
    if times is not None:
        print_times(times)


if __name__ == "__main__":
    main()
