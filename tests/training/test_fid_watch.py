"""The quick FID during training: the same figure for the same generator (common random
numbers), a different one for a different generator, the best record's round trip; and in a
real training run, FID lines in the metrics log and the best EMA generator kept."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from infinitygan.data.patches import PatchSampler
from infinitygan.model.checkpoint import load_generator
from infinitygan.training.fid_watch import (
    BEST_CHECKPOINT,
    BEST_RECORD,
    Best,
    FidWatch,
    read_best,
    write_best,
)
from infinitygan.training.loop import train
from tests.conftest import nontrivial_generator
from tests.training.conftest import CPU, TINY, tiny_cfg


def test_the_same_generator_scores_the_same_and_another_scores_differently(
    data_dir: Path,
) -> None:
    watch = FidWatch(PatchSampler(data_dir, TINY), 16, 5, CPU, "pixels")
    a, b = nontrivial_generator("tiny", seed=0), nontrivial_generator("tiny", seed=1)
    first = watch.measure(a)
    assert first > 0
    assert watch.measure(a) == first
    assert watch.measure(b) != first


def test_best_record_round_trip_and_sample_count(tmp_path: Path) -> None:
    assert read_best(tmp_path, 256) is None
    write_best(tmp_path, Best(step=4000, images=32000, fid=123.5, samples=256))
    assert read_best(tmp_path, 256) == Best(4000, 32000, 123.5, 256)
    assert read_best(tmp_path, 512) is None  # a figure at another N does not compare


def test_training_logs_quick_fid_and_keeps_the_best_ema(data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = tiny_cfg(data_dir, run, iterations=4, fid_every=2, fid_samples=8, sample_every=100)
    state = train(cfg)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fids = {line["step"]: line["quick_fid"] for line in lines if "quick_fid" in line}
    assert sorted(fids) == [2, 4]
    assert all(line["fid_samples"] == 8 for line in lines if "quick_fid" in line)
    best_step = min(fids, key=fids.get)
    best = read_best(run, 8)
    assert best == Best(best_step, best_step * cfg.batch, fids[best_step], 8)
    kept = load_generator(run / BEST_CHECKPOINT, "cpu")
    assert kept.training["quick_fid"] == fids[best_step]
    assert kept.training["iterations"] == best_step
    if best_step == state.step:  # the best is the last EMA: the same weights
        for p, q in zip(kept.generator.parameters(), state.G_ema.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert (run / BEST_RECORD).exists()
