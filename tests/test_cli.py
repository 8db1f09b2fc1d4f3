"""`infinitygan render`: a tiny checkpoint renders the requested rectangle to a PNG of the right
size (the same pixels as the library call); bad arguments exit non-zero with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infinitygan.cli import main
from infinitygan.model.canvas import Rect, render_region
from infinitygan.model.checkpoint import load_generator, save_checkpoint
from infinitygan.model.world import DEFAULT_WORLD, ONE_STYLE, World
from tests.conftest import nontrivial_generator


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "tiny.safetensors"
    save_checkpoint(path, nontrivial_generator("tiny", 0))
    return path


def _render(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["render", "--checkpoint", str(ckpt), "-o", str(out), "--device", "cpu", *extra]


def test_render_writes_png_of_the_right_size(
    tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    args = ["--seed", "42", "--x", "-300", "--y", "-77", "--width", "150", "--height", "90"]
    assert main(_render(tiny_ckpt, out, *args, "--chunk", "64")) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (90, 150, 3) and img.dtype == np.uint8
    g = load_generator(tiny_ckpt, device="cpu").generator
    expected = render_region(g, 42, Rect(-300, -77, 150, 90), max_chunk=64, world=DEFAULT_WORLD)
    assert np.array_equal(img, expected)
    assert "150x90" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--seed", "-1"], "--seed: must be >= 0"),
        (["--seed", str(2**63)], "--seed: must be <"),
        (["--seed", "abc"], "--seed: expected an integer"),
        (["--seed", "1.5"], "--seed: expected an integer"),
        (["--seed", "1", "--width", "0"], "--width: must be >= 1"),
        (["--seed", "1", "--height", "-4"], "--height: must be >= 1"),
        (["--seed", "1", "--x", "2.5"], "--x: expected an integer"),
        (["--seed", "1", "--y", str(2**50)], "--y: must be <"),
        (["--seed", "1", "--chunk", "0"], "--chunk: must be >= 1"),
        (["--seed", "1", "--biome-px", "-1"], "--biome-px: must be 0 or 16.."),
        (["--seed", "1", "--biome-px", "8"], "--biome-px: must be 0 or 16.."),
        (["--seed", "1", "--biome-px", "4k"], "--biome-px: expected an integer"),
        (["--seed", "1", "--transition-px", "0"], "--transition-px: must be >= 1"),
        # each is valid alone; the pair is not (checked before the checkpoint loads)
        (
            ["--seed", "1", "--biome-px", "4096", "--transition-px", "3000"],
            "--biome-px 4096 --transition-px 3000: transition_px must be 1..biome_px // 2 = 2048",
        ),
        ([], "--seed"),  # required
    ],
)
def test_bad_arguments_exit_2_with_message(
    tiny_ckpt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    msg: str,
) -> None:
    with pytest.raises(SystemExit) as info:
        main(_render(tiny_ckpt, tmp_path / "o.png", *args))
    assert info.value.code == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("flags", "world", "name"),
    [
        (["--biome-px", "0"], ONE_STYLE, "one style"),
        # biomes every 64 px: the 160-px region crosses transitions
        (
            ["--biome-px", "64", "--transition-px", "24"],
            World(64, 24),
            "biomes every 64 px, 24-px transitions",
        ),
    ],
    ids=["one-style", "biomes"],
)
def test_render_in_a_world(
    tiny_ckpt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    world: World,
    name: str,
) -> None:
    """`--biome-px` / `--transition-px` choose the world: the PNG is that world's region."""
    out = tmp_path / "world.png"
    rect = Rect(-40, -30, 160, 48)
    args = ["--seed", "5", "--x", "-40", "--y", "-30", "--width", "160", "--height", "48"]
    assert main(_render(tiny_ckpt, out, *args, *flags)) == 0
    img = np.asarray(Image.open(out))
    g = load_generator(tiny_ckpt, device="cpu").generator
    assert np.array_equal(img, render_region(g, 5, rect, world=world))
    one_style = render_region(g, 5, rect, world=ONE_STYLE)
    assert np.array_equal(img, one_style) == (not world.biomes)
    assert capsys.readouterr().out.rstrip().endswith(f", {name})")


def test_semantic_errors_exit_2_with_message(
    tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.png"
    missing = tmp_path / "missing.safetensors"
    assert main(_render(missing, out, "--seed", "1")) == 2
    err = capsys.readouterr().err
    assert "error" in err and str(missing) in err and "no such checkpoint" in err
    # each side is valid on its own, the area is not
    big = ["--seed", "1", "--width", str(2**20 - 1), "--height", str(2**20 - 1)]
    assert main(_render(tiny_ckpt, out, *big)) == 2
    assert "at most" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    assert main(_render(bad, out, "--seed", "1")) == 2
    assert str(bad) in capsys.readouterr().err
    assert not out.exists()


def test_no_subcommand_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_console_entry_point_in_a_subprocess(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub.png"
    args = _render(tiny_ckpt, out, "--seed", "7", "--x", "512", "--width", "64", "--height", "32")
    proc = subprocess.run(
        [sys.executable, "-m", "infinitygan.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (64, 32)
