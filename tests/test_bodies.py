"""Post-processing on hand-made probability rasters whose bodies are known."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from landslide_ssgan.config import MapConfig
from landslide_ssgan.inference.bodies import CLASS_NODATA, class_raster, landslide_bodies

PIXEL_AREA = 100.0  # 10 m pixels
PLAIN = MapConfig(model_uri=None, compare_baseline=False, block_size=512, threshold=0.5,
                  opening=0, closing=0, min_area_m2=500.0, connectivity=8, preview_size=600)


def _raster() -> np.ndarray:
    p = np.full((40, 50), 0.1, np.float32)
    p[2:7, 3:8] = 0.9            # body A: 5 x 5 = 25 px, first in scan order
    p[3:5, 20:22] = 0.8          # 2 x 2 = 4 px = 400 m2 < 500 m2: dropped
    p[10:20, 30:33] = 0.7        # body B: 10 x 3 = 30 px
    p[25:28, 5:8] = 0.6          # C1: 3 x 3, touching C2 only at a corner
    p[28:31, 8:11] = 0.6         # C2
    p[35:40, 45:50] = 0.95       # body at the raster's corner: 25 px
    p[0:2, 40:50] = np.nan       # nodata
    return p


def test_counts_areas_ids_and_mean_probability() -> None:
    found = landslide_bodies(_raster(), PLAIN, PIXEL_AREA)
    # 8-connectivity joins C1 and C2; the 4-pixel body is below the minimum area
    assert found.count == 4
    np.testing.assert_allclose(found.areas_m2, [2500, 3000, 1800, 2500])
    np.testing.assert_allclose(found.mean_probability, [0.9, 0.7, 0.6, 0.95], rtol=1e-6)
    assert found.labels[4, 5] == 1 and found.labels[15, 31] == 2 and found.labels[37, 47] == 4
    assert found.labels[3, 20] == 0
    summary = found.summary()
    assert summary["count"] == 4 and summary["smallest_m2"] == 1800.0
    assert summary["largest_m2"] == 3000.0
    assert summary["total_area_km2"] == pytest.approx(9800 / 1e6)


def test_four_connectivity_splits_bodies_touching_at_a_corner() -> None:
    found = landslide_bodies(_raster(), replace(PLAIN, connectivity=4, min_area_m2=0.0), 100.0)
    assert found.count == 6  # A, the small one, B, C1, C2, the corner body
    assert found.labels[26, 6] != found.labels[29, 9]


def test_opening_removes_specks_and_closing_fills_gaps_without_eating_the_edge() -> None:
    p = np.full((30, 30), 0.0, np.float32)
    p[5, 5] = 0.9                # a one-pixel speck
    p[10:20, 10:20] = 0.9
    p[15, 15] = 0.0              # a one-pixel hole
    p[0:6, 24:30] = 0.9          # at the raster's edge
    smoothed = landslide_bodies(p, replace(PLAIN, opening=1, closing=1, min_area_m2=0.0),
                                PIXEL_AREA)
    assert smoothed.labels[5, 5] == 0
    assert smoothed.labels[15, 15] > 0
    assert (smoothed.labels[0:5, 25:30] > 0).all()  # the edge is not eroded by the padding


def test_class_raster_marks_nodata() -> None:
    p = _raster()
    found = landslide_bodies(p, PLAIN, PIXEL_AREA)
    classes = class_raster(found.labels, np.isfinite(p))
    assert classes[0, 45] == CLASS_NODATA
    assert classes[4, 5] == 1 and classes[3, 20] == 0 and classes[20, 20] == 0


# --- block by block ---------------------------------------------------------------------


def _field(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth random map: blobs of every size and shape, many across any seam, with holes
    and a margin without data."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    p = ndimage.gaussian_filter(rng.normal(size=shape), 2.5)
    p = ((p - p.min()) / (p.max() - p.min())).astype(np.float32)
    p[rng.random(shape) < 0.01] = np.nan  # scattered nodata pixels
    p[:, :3] = np.nan
    p[40:46, 60:90] = np.nan
    return p


@pytest.mark.parametrize(("block", "opening", "closing", "connectivity"), [
    (17, 1, 1, 8), (32, 0, 0, 4), (25, 2, 1, 8), (50, 1, 2, 4), (7, 1, 1, 8), (130, 1, 1, 8)])
def test_blocks_give_the_bodies_and_ids_of_the_whole_map(block: int, opening: int,
                                                         closing: int,
                                                         connectivity: int) -> None:
    from landslide_ssgan.data.blocks import blocks_of
    from landslide_ssgan.data.grid import Grid
    from landslide_ssgan.inference.bodies import join_blocks

    p = _field((120, 130), seed=block)
    cfg = replace(PLAIN, threshold=0.6, opening=opening, closing=closing,
                  connectivity=connectivity, min_area_m2=300.0)
    whole = landslide_bodies(p, cfg, PIXEL_AREA)
    assert whole.count > 5
    blocks = blocks_of(Grid(None, None, 130, 120), block)  # type: ignore[arg-type]
    kept: dict[int, np.ndarray] = {}

    def read(b: Any, reach: tuple[int, int, int, int]) -> np.ndarray:
        top, bottom, left, right = reach
        return p[b.row - top:b.row + b.height + bottom, b.col - left:b.col + b.width + right]

    found = join_blocks(blocks, p.shape, cfg, PIXEL_AREA, read,
                        lambda b, labels: kept.__setitem__(b.index, labels))
    labels = np.zeros(p.shape, np.int32)
    for b in blocks:
        labels[b.row:b.row + b.height, b.col:b.col + b.width] = found.ids(b, kept[b.index])
    np.testing.assert_array_equal(labels, whole.labels)
    np.testing.assert_array_equal(found.areas_m2, whole.areas_m2)
    np.testing.assert_allclose(found.mean_probability, whole.mean_probability, rtol=1e-12)
    assert found.summary() == whole.summary()


def test_the_seams_hold_the_edges_of_blocks_not_the_blocks() -> None:
    """SeamJoin keeps each block's border rows and columns; kept as views of the block, they
    kept every block's labels alive (460 MB for a Sentinel-2 tile's map)."""
    import tracemalloc

    from landslide_ssgan.data.seams import Pieces, SeamJoin

    join = SeamJoin(8, 8, 8)
    tracemalloc.start()
    for r in range(8):
        for c in range(8):
            join.add((r, c), Pieces(np.ones((256, 256), np.int32), np.array([65536]),
                                    np.array([1.0]), np.array([r * 2048 * 256 + c * 256])))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < 2 * 2 ** 20  # the edges: 64 x 4 x 256 int32 = 256 KiB; the blocks 16 MiB
    final, areas, _ = join.bodies(0.0, 1.0)
    assert len(areas) == 1 and areas[0] == 64 * 65536  # one body across every seam
