"""DiffAugment: translation with no room to shift is the identity and otherwise a zero-filled
shift within its range; cutout zeroes one rectangle per sample covering the expected fraction
of the patch; every op keeps shape and dtype and lets gradients through to the generator."""

from __future__ import annotations

import pytest
import torch

from infinitygan.training import augment


def _image(b: int = 6, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[y, x] = x[y + dy, x + dx], zero where that falls outside."""
    _, _, h, w = x.shape
    out = torch.zeros_like(x)
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    src_y, src_x = slice(ys.start + dy, ys.stop + dy), slice(xs.start + dx, xs.stop + dx)
    out[:, :, ys, xs] = x[:, :, src_y, src_x]
    return out


def test_translation_without_room_to_shift_is_the_identity() -> None:
    x = _image()
    torch.manual_seed(0)
    assert torch.equal(augment._translation(x, ratio=0.0), x)


def test_translation_is_a_zero_filled_shift_within_its_range() -> None:
    x = _image(b=16, h=16, w=24) + 5  # nothing is zero before the shift
    torch.manual_seed(1)
    out = augment._translation(x, ratio=0.125)  # up to 2 rows and 3 columns
    shifts = set()
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-3, 4)
            if torch.equal(out[i : i + 1], _shifted(x[i : i + 1], dy, dx))
        ]
        assert len(found) == 1, (i, found)
        shifts.add(found[0])
    assert len(shifts) > 4  # samples draw their own shifts


def test_cutout_zeroes_one_rectangle_of_at_most_half_the_sides() -> None:
    x = _image(b=64, h=16, w=16) + 5
    torch.manual_seed(2)
    out = augment._cutout(x)
    for i in range(len(x)):
        zero = out[i, 0] == 0
        assert torch.equal(out[i, :, ~zero], x[i, :, ~zero])  # elsewhere untouched
        assert (out[i, :, zero] == 0).all()  # all channels cut together
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 4 <= len(rows) <= 8 and 4 <= len(cols) <= 8, (i, rows, cols)  # 8x8, may hang off
        assert zero.sum() == len(rows) * len(cols)  # one solid rectangle
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()


def test_cutout_covers_the_expected_area_fraction() -> None:
    """A 16-row cut whose top is uniform in [-8, 24) over 32 rows keeps 14 rows on average
    (edges cut it short); rows and columns are independent, so 14/32 squared of the area."""
    x = torch.ones(4096, 1, 32, 32)
    torch.manual_seed(3)
    frac = (augment._cutout(x) == 0).float().mean().item()
    assert frac == pytest.approx((14 / 32) ** 2, abs=0.01)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_ops_keep_shape_and_dtype_and_pass_gradients(policy: str) -> None:
    names = augment.parse_policy(policy)
    for dtype in (torch.float32, torch.float64):
        x = _image(b=4, h=12, w=10).to(dtype).requires_grad_(True)
        torch.manual_seed(4)
        out = augment.diff_augment(x, names)
        assert out.shape == x.shape and out.dtype == dtype
        out.square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_color_changes_each_sample_by_its_own_factors() -> None:
    x = _image(b=8)
    torch.manual_seed(5)
    out = augment._color(x)
    assert not torch.allclose(out, x)
    per_sample = (out - x).flatten(1).mean(1)
    assert per_sample.std() > 0.01  # brightness etc. are drawn per sample


def test_policy_parsing() -> None:
    assert augment.parse_policy("none") == []
    assert augment.parse_policy(" color , cutout ") == ["color", "cutout"]
    x = _image()
    assert augment.diff_augment(x, []) is x
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.parse_policy("color,flip")
