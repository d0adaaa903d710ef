"""From a probability map to landslide bodies: threshold, morphological smoothing, connected
components, a minimum area (METHOD.md, "Mapping": landslide pixels clustered and smoothed into
landslides whose number and areas are reported).

Pure numpy / scipy.ndimage; ids are given in raster scan order of each body's first pixel, so
the same map always gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from landslide_ssgan.config import MapConfig

CLASS_NODATA = 255


@dataclass(frozen=True)
class Bodies:
    labels: np.ndarray           # int32, 0 = no landslide, 1..n = body id
    areas_m2: np.ndarray         # per id, in id order
    mean_probability: np.ndarray

    @property
    def count(self) -> int:
        return len(self.areas_m2)

    def summary(self) -> dict[str, float | int | None]:
        areas = self.areas_m2
        return {"count": self.count,
                "total_area_km2": float(areas.sum() / 1e6),
                "smallest_m2": float(areas.min()) if self.count else None,
                "largest_m2": float(areas.max()) if self.count else None,
                "median_m2": float(np.median(areas)) if self.count else None}


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2


def smoothed_mask(probability: np.ndarray, cfg: MapConfig) -> np.ndarray:
    """Landslide pixels after an opening (removes specks narrower than the disk) and a closing
    (fills gaps narrower than it). The mask is padded by repeating its edge, so a body cut by
    the raster's edge is treated as continuing past it rather than eroded there; the result
    never reaches pixels without data."""
    valid = np.isfinite(probability)
    mask = valid & (np.nan_to_num(probability, nan=0.0) >= cfg.threshold)
    pad = max(cfg.opening, cfg.closing)
    mask = np.pad(mask, pad, mode="edge")
    if cfg.opening:
        mask = ndimage.binary_opening(mask, _disk(cfg.opening))
    if cfg.closing:
        mask = ndimage.binary_closing(mask, _disk(cfg.closing))
    return mask[pad:mask.shape[0] - pad, pad:mask.shape[1] - pad] & valid


def landslide_bodies(probability: np.ndarray, cfg: MapConfig, pixel_area_m2: float) -> Bodies:
    mask = smoothed_mask(probability, cfg)
    structure = np.ones((3, 3), bool) if cfg.connectivity == 8 else None
    labels, n = ndimage.label(mask, structure=structure)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:] * pixel_area_m2
    kept = np.flatnonzero(areas >= cfg.min_area_m2) + 1  # old ids, still in scan order
    relabel = np.zeros(n + 1, np.int32)
    relabel[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    labels = relabel[labels]
    means = ndimage.mean(np.nan_to_num(probability), labels, np.arange(1, len(kept) + 1))
    return Bodies(labels, areas[kept - 1], np.asarray(means, np.float64).reshape(-1))


def class_raster(bodies: Bodies, probability: np.ndarray) -> np.ndarray:
    """uint8: 1 inside a landslide body, 0 elsewhere, 255 where there is no data."""
    out = (bodies.labels > 0).astype(np.uint8)
    out[~np.isfinite(probability)] = CLASS_NODATA
    return out
