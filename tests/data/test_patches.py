"""Training data: real patches carry the label of the rows they were cut from; missing, empty
and unreadable folders fail clearly, and unreadable files among good ones are skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infinitygan.data.patches import DataError, PatchSampler, load_folder
from tests.conftest import write_landscapes
from tests.training.conftest import TINY

FULL_PX = TINY.train_full_cells * TINY.pixels_per_cell  # 64: a training image's height
PATCH_PX = TINY.train_patch_cells * TINY.pixels_per_cell  # 32


def test_vertical_labels_match_where_the_patch_was_cut(tmp_path: Path) -> None:
    """Images exactly one training image high whose red channel is 4 x the row index (green:
    the image number), so every patch says which rows it came from."""
    folder = tmp_path / "rows"
    folder.mkdir()
    for i in range(3):
        img = np.zeros((FULL_PX, 90 + 10 * i, 3), dtype=np.uint8)
        img[:, :, 0] = (4 * np.arange(FULL_PX))[:, None]
        img[:, :, 1] = 50 * i
        Image.fromarray(img).save(folder / f"{i}.png")
    sampler = PatchSampler(folder, TINY)
    batch = sampler.sample(256, torch.Generator().manual_seed(0))
    pixels = ((batch.images + 1) * 127.5).round().to(torch.int64)  # [B, 3, P, P]
    span = TINY.train_full_cells - TINY.train_patch_cells
    ppc = TINY.pixels_per_cell

    assert set(batch.row_cells.tolist()) == set(range(span + 1))  # every offset occurs
    for i in range(len(pixels)):
        top = int(batch.row_cells[i]) * ppc
        expect_rows = 4 * torch.arange(top, top + PATCH_PX)
        assert torch.equal(pixels[i, 0], expect_rows[:, None].expand(PATCH_PX, PATCH_PX)), i
    assert torch.equal(batch.labels, batch.row_cells.float() / span * 2 - 1)
    assert batch.labels.min() == -1.0 and batch.labels.max() == 1.0
    top_patches = batch.labels == -1.0
    assert (pixels[top_patches, 0, 0] == 0).all()  # label -1 = cut at the image top


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "nope", 64)


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images"):
        load_folder(tmp_path, 64)


def test_unreadable_images_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"not a png at all")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff truncated")
    with pytest.raises(DataError, match="none of the 2 images could be read"):
        load_folder(tmp_path, 64)


def test_unreadable_files_are_skipped_when_some_images_load(tmp_path: Path) -> None:
    write_landscapes(tmp_path, n=2)
    (tmp_path / "broken.png").write_bytes(b"garbage")
    assert len(load_folder(tmp_path, FULL_PX)) == 2
