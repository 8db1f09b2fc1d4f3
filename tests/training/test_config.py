"""TrainConfig: validated on construction, never changed afterwards; the preset's R1 weight is
filled in by `resolved()` (a copy), which `--dry-run` shows and `--r1-gamma` overrides."""

from __future__ import annotations

import dataclasses
import json

import pytest

from infinitygan.model.config import PRESETS, TrainConfig


@pytest.mark.parametrize(
    ("argv", "gamma"),
    [
        (["--preset", "paper"], 10.0),  # the paper's weight for its 101 px patches
        (["--preset", "small"], 0.5),  # 64 px patches: what the shipped checkpoint trains with
        (["--preset", "paper", "--r1-gamma", "2.5"], 2.5),
    ],
)
def test_r1_weight_follows_the_preset_unless_given(
    argv: list[str], gamma: float, capsys: pytest.CaptureFixture
) -> None:
    from infinitygan.cli import main

    assert main(["train", *argv, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["r1_gamma"] == gamma


def test_resolving_returns_a_new_config_and_leaves_the_original() -> None:
    cfg = TrainConfig(preset="paper")
    resolved = cfg.resolved()
    assert cfg.r1_gamma is None and resolved.r1_gamma == PRESETS["paper"].r1_gamma
    assert dataclasses.replace(resolved, r1_gamma=None) == cfg  # nothing else changed
    assert resolved.resolved() == resolved
    given = TrainConfig(preset="paper", r1_gamma=0.0)
    assert given.resolved().r1_gamma == 0.0  # an explicit 0 is a value, not "unset"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.r1_gamma = 1.0  # type: ignore[misc]


def test_negative_r1_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="r1_gamma"):
        TrainConfig(r1_gamma=-1.0)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("batch", 3, "even"),
        ("r1_every", 0, "r1_every"),
        ("mixing_prob", 1.5, "mixing_prob"),
        ("preset", "huge", "unknown model preset"),
    ],
)
def test_invalid_settings_are_rejected(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})
