"""Windows as one picture: the generator's windows that the train stage logs to MLflow.

Pure numpy, apart from the figures of plots.py, so that a change to a figure never makes a
trained model stale (dvc.yaml: the train stages depend on this module, not on plots.py).
"""

from __future__ import annotations

import numpy as np


def _to_grey(values: np.ndarray, clip: float = 2.5) -> np.ndarray:
    """Normalised values (about -clip..clip) to 0..255."""
    return (np.clip((values + clip) / (2 * clip), 0, 1) * 255).astype(np.uint8)


def grid_columns(band_names: tuple[str, ...], rgb: tuple[str, ...]) -> list[str]:
    """What each column of `window_grid`'s image shows, left to right (its caption)."""
    colour = [b for b in rgb if b in band_names]
    colour = colour if len(colour) == 3 else []
    return ([f"RGB {'/'.join(colour)}"] if colour else []) + [
        b for b in band_names if b not in colour]


def window_grid(windows: np.ndarray, band_names: tuple[str, ...], rgb: tuple[str, ...],
                scale: int = 4, gap: int = 2) -> np.ndarray:
    """One row per window: an RGB composite of the optical bands named in `rgb` (when the
    feature set has them), then every other band in grey. Returns an (H, W, 3) uint8 image."""
    n, size, _, channels = windows.shape
    colour = [band_names.index(b) for b in rgb if b in band_names]
    colour = colour if len(colour) == 3 else []
    grey = [i for i in range(channels) if i not in colour]
    columns = (1 if colour else 0) + len(grey)
    tile = size * scale + gap
    image = np.full((n * tile + gap, columns * tile + gap, 3), 255, dtype=np.uint8)
    for r, window in enumerate(windows):
        tiles = ([_to_grey(window[..., colour])] if colour else []) + [
            np.repeat(_to_grey(window[..., i])[..., None], 3, axis=-1) for i in grey]
        for c, piece in enumerate(tiles):
            big = np.kron(piece, np.ones((scale, scale, 1), dtype=np.uint8))
            top, left = gap + r * tile, gap + c * tile
            image[top:top + size * scale, left:left + size * scale] = big
    return image
