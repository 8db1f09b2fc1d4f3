"""Other revisions of this repository, for benchmarks that measure old and new code side by side
in one run: `git archive` of a revision into a temporary directory, and short `git` queries."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def exported(rev: str) -> Iterator[Path]:
    """The tree of `rev` (git archive) in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def describe(rev: str | None) -> str:
    """`hash subject` of `rev`, or of the working tree (HEAD, marked when it has changes)."""
    if rev is not None:
        return git("log", "-1", "--format=%h %s", rev)
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("log", "-1", "--format=%h %s", "HEAD") + (" + uncommitted changes" if dirty else "")
