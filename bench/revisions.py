"""Other revisions of this repository, for benchmarks that measure old and new code side by side
in one run: `git archive` of a revision into a temporary directory, and short `git` queries."""

from __future__ import annotations

import json
import os
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


class TreeProcess:
    """A long-lived child process importing the tree at `root`, driven by one command per line
    on its stdin and answering one JSON object per line on its stdout. Its first answer must
    be `{"ready": infinitygan.__file__, ...}`: the tree it really imported is checked against
    `root`, so a stray installed copy cannot stand in for the revision under test."""

    def __init__(self, name: str, root: Path, cmd: list[str], threads: int) -> None:
        self.name, self.root = name, root
        n = str(threads)
        env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ready = self._reply()
        imported = Path(self.ready["ready"]).resolve()
        if root.resolve() not in imported.parents:
            raise RuntimeError(f"{name}: imported {imported}, not the tree at {root}")

    def _reply(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: child exited with {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
