"""Per-band normalisation: the training pixels' mean and standard deviation of each band.

One format for every normalisation file, {bands, mean, std, window}: the sample stage's
norm.json (every band of the stack) and each trained model's normalisation.json (the bands
that model sees), so a model folder says by itself what windows it takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landslide_ssgan.errors import InputError
from landslide_ssgan.files import write_json


@dataclass(frozen=True)
class Normalisation:
    bands: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    window: int | None = None  # the window size the statistics were gathered with

    def select(self, indices: Sequence[int]) -> Normalisation:
        """The statistics of some bands only (a feature set), in that order."""
        chosen = list(indices)
        return Normalisation(tuple(self.bands[i] for i in chosen), self.mean[chosen],
                             self.std[chosen], self.window)

    def to_dict(self) -> dict[str, object]:
        return {"bands": list(self.bands), "mean": np.asarray(self.mean).tolist(),
                "std": np.asarray(self.std).tolist(), "window": self.window}

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Normalisation:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: file not found (run the sample stage first)")
        try:
            raw = json.loads(path.read_text())
            window = raw.get("window")
            norm = cls(tuple(raw["bands"]), np.asarray(raw["mean"], float),
                       np.asarray(raw["std"], float), None if window is None else int(window))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{path}: not a normalisation file ({exc})") from None
        if not len(norm.bands) == len(norm.mean) == len(norm.std):
            raise InputError(f"{path}: bands, mean and std differ in length")
        bad = [band for band, mean, std in zip(norm.bands, norm.mean, norm.std, strict=True)
               if not (np.isfinite(mean) and np.isfinite(std) and std > 0)]
        if bad:
            raise InputError(f"{path}: bands {bad} have a non-finite mean or a standard "
                             "deviation that is not positive; rerun `landslide sample`")
        return norm
