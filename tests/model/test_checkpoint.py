"""Checkpoints: save -> load gives identical pixels and a content-hash version; every way a file
can be wrong becomes a CheckpointError that names the file (and nothing is ever unpickled)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from infinitygan.model import checkpoint as ck
from infinitygan.model.canvas import Rect, render_batch
from infinitygan.model.config import PRESETS
from infinitygan.model.networks import Generator
from tests.conftest import nontrivial_generator


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Generator]:
    g = nontrivial_generator("tiny", 1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    version = ck.save_checkpoint(path, g, training={"step": 12, "kimg": 0.5})
    return path, version, g


def _meta(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n])["__metadata__"]


def _rewrite(
    src: Path, dst: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor] | None = None
) -> Path:
    from safetensors.torch import load_file

    save_file(tensors if tensors is not None else load_file(src), dst, metadata=meta)
    return dst


def test_roundtrip_identical_pixels_and_version(saved: tuple[Path, str, Generator]) -> None:
    path, version, g = saved
    loaded = ck.load_generator(path, device="cpu")
    assert loaded.version == version == ck.content_version(path.read_bytes())
    assert len(version) == 16 and int(version, 16) >= 0
    assert loaded.config == g.cfg
    assert loaded.training == {"step": 12, "kimg": 0.5}
    assert loaded.path == path
    assert not loaded.generator.training
    assert not any(p.requires_grad for p in loaded.generator.parameters())
    jobs = [(3, Rect(-300, 40, 96, 64)), (2**63 - 1, Rect(2**39, -(2**39), 96, 64))]
    assert np.array_equal(render_batch(loaded.generator, jobs), render_batch(g, jobs))
    # loading twice is deterministic, saving the same weights gives the same version
    assert ck.load_generator(path, device="cpu").version == version
    again = path.with_name("again.safetensors")
    assert (
        ck.save_checkpoint(again, loaded.generator, training={"step": 12, "kimg": 0.5}) == version
    )


def test_version_changes_with_weights(saved: tuple[Path, str, Generator], tmp_path: Path) -> None:
    _, version, _ = saved
    other = ck.save_checkpoint(tmp_path / "o.safetensors", nontrivial_generator("tiny", 2))
    assert other != version


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    ck.save_checkpoint(tmp_path / "sub" / "g.safetensors", nontrivial_generator("tiny", 0))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["g.safetensors"]


def _expect_error(path: Path, match: str) -> None:
    with pytest.raises(ck.CheckpointError, match=match) as info:
        ck.load_generator(path, device="cpu")
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.safetensors", "no such checkpoint file")
    _expect_error(tmp_path, "cannot read checkpoint: a directory, not a regular file")


def test_special_files_are_refused_without_reading(tmp_path: Path) -> None:
    """A FIFO would block the reader forever and /dev/zero never ends: both are refused by
    type, at once (this test would hang, or run out of memory, if either were read)."""
    fifo = tmp_path / "ckpt.fifo"
    os.mkfifo(fifo)
    _expect_error(fifo, "a FIFO, not a regular file")
    _expect_error(Path("/dev/zero"), "a character device, not a regular file")
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")  # a symlink is followed, and what it points to is checked
    _expect_error(link, "a character device, not a regular file")


def test_size_bound(saved: tuple[Path, str, Generator], tmp_path: Path) -> None:
    path, version, _ = saved
    size = path.stat().st_size
    assert ck.load_generator(path, device="cpu", max_bytes=size).version == version
    with pytest.raises(ck.CheckpointError, match=f"larger than the limit of {size - 1} bytes"):
        ck.load_generator(path, device="cpu", max_bytes=size - 1)
    link = tmp_path / "link.safetensors"
    link.symlink_to(path)  # a symlink to a regular file is a regular file
    assert ck.load_generator(link, device="cpu").version == version


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda d: b"", id="empty"),
        pytest.param(lambda d: d[: len(d) // 2], id="truncated-data"),
        pytest.param(lambda d: d[:20], id="truncated-header"),
        pytest.param(lambda d: d[:8] + b"\xff" * 40 + d[48:], id="corrupt-header"),
        pytest.param(lambda d: (2**62).to_bytes(8, "little") + d[8:], id="huge-header-length"),
        pytest.param(lambda d: b"\x89PNG\r\n\x1a\n" + bytes(200), id="png"),
        pytest.param(lambda d: b"hello, I am a text file\n" * 10, id="text"),
        pytest.param(lambda d: pickle.dumps({"weights": [1, 2, 3]}), id="pickle"),
    ],
)
def test_corrupt_or_foreign_files(
    saved: tuple[Path, str, Generator], tmp_path: Path, mangle
) -> None:
    path, _, _ = saved
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(mangle(path.read_bytes()))
    _expect_error(bad, "not a valid safetensors file|unreadable")


def test_torch_save_file_is_never_unpickled(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    bad = tmp_path / "model.pt"
    torch.save({"state": Boom()}, bad)
    _expect_error(bad, "not a valid safetensors file")


def test_wrong_or_missing_format_tag(saved: tuple[Path, str, Generator], tmp_path: Path) -> None:
    path, _, _ = saved
    meta = _meta(path)
    _expect_error(
        _rewrite(path, tmp_path / "a.safetensors", {**meta, "format": "stylegan2"}), "format tag"
    )
    no_tag = {k: v for k, v in meta.items() if k != "format"}
    _expect_error(_rewrite(path, tmp_path / "b.safetensors", no_tag), "format tag")
    _expect_error(_rewrite(path, tmp_path / "c.safetensors", {}), "format tag")
    _expect_error(
        _rewrite(path, tmp_path / "d.safetensors", {**meta, "format_version": "99"}),
        "format version '99'",
    )


def test_mismatched_config(saved: tuple[Path, str, Generator], tmp_path: Path) -> None:
    """tiny weights with the small preset's config swapped into the metadata."""
    path, _, _ = saved
    meta = _meta(path)
    small = json.dumps(PRESETS["small"].generator.to_dict())
    _expect_error(
        _rewrite(path, tmp_path / "m.safetensors", {**meta, "config": small}), "do not match"
    )
    # one tensor missing, one extra
    from safetensors.torch import load_file

    tensors = load_file(path)
    dropped = dict(tensors)
    dropped.pop(next(iter(dropped)))
    _expect_error(_rewrite(path, tmp_path / "x.safetensors", meta, dropped), "do not match")
    extra = {**tensors, "bogus.weight": torch.zeros(2)}
    _expect_error(_rewrite(path, tmp_path / "y.safetensors", meta, extra), "do not match")


@pytest.mark.parametrize(
    "config",
    ["not json", "[1, 2]", json.dumps({"z_dim": 8, "wings": 2}), json.dumps({"z_dim": "big"})],
)
def test_invalid_config_metadata(
    saved: tuple[Path, str, Generator], tmp_path: Path, config: str
) -> None:
    path, _, _ = saved
    bad = _rewrite(path, tmp_path / "c.safetensors", {**_meta(path), "config": config})
    with pytest.raises(ck.CheckpointError) as info:
        ck.load_generator(bad, device="cpu")
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights(
    saved: tuple[Path, str, Generator], tmp_path: Path, value: float
) -> None:
    from safetensors.torch import load_file

    path, _, _ = saved
    tensors = load_file(path)
    name = "texture.convs.0.weight"
    tensors[name] = tensors[name].clone()
    tensors[name][0, 0, 1, 1] = value
    bad = _rewrite(path, tmp_path / "n.safetensors", _meta(path), tensors)
    _expect_error(bad, f"non-finite values in {name}")


def test_default_checkpoint_loads() -> None:
    """The shipped default (an untrained or trained `small`) goes through the same loader."""
    if not ck.DEFAULT_CHECKPOINT.exists():
        pytest.skip("no shipped checkpoint in this checkout")
    loaded = ck.load_generator(ck.DEFAULT_CHECKPOINT, device="cpu")
    assert loaded.config.n_up == len(loaded.config.texture_channels)
