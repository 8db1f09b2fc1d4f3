"""Generator checkpoints: safetensors weights + JSON metadata (config, training summary), the
file's content hash as its version. The only loader; nothing is ever unpickled.

Serving, rendering, evaluation, benchmarks and fine-tuning all call `load_generator`, which turns
every way a file can be wrong (missing, not a regular file, too large, truncated, corrupt,
foreign, mismatched, non-finite) into a `CheckpointError` that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .config import GeneratorConfig
from .networks import Generator

FORMAT = "infinitygan-generator"
FORMAT_VERSION = "1"
DEFAULT_CHECKPOINT = (
    Path(__file__).resolve().parents[2] / "checkpoints" / "infinitygan-small.safetensors"
)
MAX_CHECKPOINT_BYTES = 2 << 30  # the `small` preset is 13 MB; a bound, not an expected size


class CheckpointError(Exception):
    """A checkpoint file that cannot be used, with the reason."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    generator: Generator
    config: GeneratorConfig
    version: str  # first 16 hex digits of the file's sha256
    path: Path
    training: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def content_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def atomic_write(path: Path, data: bytes) -> None:
    """Write next to the target, then rename: a full disk or a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a checkpoint is shared data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _canonical_header(data: bytes) -> bytes:
    """safetensors writes its metadata map in hash-map order, which differs between calls; the
    header is rewritten with sorted keys (space-padded to 8 bytes, as the format does) so the same
    weights and config always give the same bytes, hence the same version."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":"))
    raw = header.encode() + b" " * (-len(header.encode()) % 8)
    return len(raw).to_bytes(8, "little") + raw + data[8 + n :]


def save_checkpoint(
    path: str | Path, generator: Generator, training: dict[str, Any] | None = None
) -> str:
    """Save the generator's weights and config; returns the new file's version."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(generator.cfg.to_dict()),
        "training": json.dumps(training or {}),
    }
    data = _canonical_header(save_safetensors_bytes(tensors, metadata=metadata))
    atomic_write(Path(path), data)
    return content_version(data)


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's bytes (u64 little-endian header length, then
    the JSON header); ValueError if the header is not JSON."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return dict(header.get("__metadata__") or {})


def _read_metadata(path: Path, data: bytes) -> dict[str, str]:
    try:
        return safetensors_metadata(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors header ({e})") from e


_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _not_regular(path: Path, mode: int) -> CheckpointError:
    kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return CheckpointError(f"{path}: cannot read checkpoint: {kind}, not a regular file")


def read_checkpoint_bytes(path: Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`. Anything else is refused before a
    byte is read: a FIFO would block the reader, `/dev/zero` never ends, a directory is no file.
    The type is checked on the open descriptor too (opened non-blocking, so a FIFO swapped in
    after the `stat` cannot block), and at most `max_bytes + 1` bytes are ever read."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({e.strerror})") from e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        too_big = CheckpointError(
            f"{path}: checkpoint is larger than the limit of {max_bytes} bytes"
        )
        if info.st_size > max_bytes:
            raise too_big
        try:
            data = f.read(max_bytes + 1)  # the file may have grown since the fstat
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read checkpoint ({e.strerror})") from e
    if len(data) > max_bytes:
        raise too_big
    return data


def load_generator(
    path: str | Path,
    device: str | torch.device = "auto",
    max_bytes: int = MAX_CHECKPOINT_BYTES,
) -> LoadedCheckpoint:
    """Rebuild the generator from the checkpoint's own config copy and load its weights."""
    path = Path(path)
    data = read_checkpoint_bytes(path, max_bytes)
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, OverflowError) as e:
        raise CheckpointError(
            f"{path}: not a valid safetensors file, truncated or corrupt ({e})"
        ) from e
    meta = _read_metadata(path, data)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an infinitygan generator checkpoint (no format tag)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('format_version')!r}, "
            f"this code reads {FORMAT_VERSION!r}"
        )
    try:
        config = GeneratorConfig.from_dict(json.loads(meta["config"]))
        training = json.loads(meta.get("training", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in checkpoint ({e})") from e
    generator = Generator(config)
    try:
        generator.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{path}: weights do not match the config they carry: {' '.join(first[:3])}"
        ) from e
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite values in {', '.join(bad[:3])}")
    generator = generator.to(resolve_device(device)).eval().requires_grad_(False)
    return LoadedCheckpoint(generator, config, content_version(data), path, training)
