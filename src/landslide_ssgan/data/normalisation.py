"""Per-band normalisation statistics, stored beside the samples they were computed from."""

from __future__ import annotations

import json
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

    def save(self, path: str | Path) -> None:
        write_json(path, {"bands": list(self.bands), "mean": self.mean.tolist(),
                          "std": self.std.tolist(), "from": "pixels of training windows"})

    @classmethod
    def load(cls, path: str | Path) -> Normalisation:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: file not found (run the sample stage first)")
        raw = json.loads(path.read_text())
        try:
            norm = cls(tuple(raw["bands"]), np.asarray(raw["mean"], float),
                       np.asarray(raw["std"], float))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: not a normalisation file ({exc})") from exc
        if not len(norm.bands) == len(norm.mean) == len(norm.std):
            raise InputError(f"{path}: bands, mean and std differ in length")
        return norm
