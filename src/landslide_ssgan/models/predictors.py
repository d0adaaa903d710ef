"""A trained model as inference sees it: one predictor per family of the learner table.

Four families cover every kind: a window network (the discriminator of the SSGAN, its twin
and FixMatch), a patch network (the U-Net of the segmenters), a random forest and a GLM. Each
answers normalised windows, answers a whole block of a map, and saves and loads its one file;
the learner table (learners.py) says which family each kind's trained model becomes, and
bundle.py finds the family of a folder by that file. Nothing else asks what a model is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import joblib
import numpy as np

from landslide_ssgan.files import atomic_path
from landslide_ssgan.models import forest as forests
from landslide_ssgan.models.glm import CentreLogit

# The networks' modules are imported where a network is used, so that a classifier's stage
# (fit) never loads TensorFlow (seconds of every such process).
if TYPE_CHECKING:
    import keras

    from landslide_ssgan.models.augment import Bands


class Predictor(Protocol):
    file: ClassVar[str]     # the one file of a model folder that holds it
    per_pixel: ClassVar[bool]  # answers every pixel of a patch (a segmenter)

    @property
    def window(self) -> int | None:
        """The window (or patch) it reads, where the model itself says so."""

    def probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) of normalised windows (N, w, w, C), at each window's centre."""

    def block_probability(self, image: np.ndarray, valid: np.ndarray,
                          window: int) -> np.ndarray:
        """P(landslide) of the `valid` (rows, cols) centres of a normalised block read with
        half a window of context on every side (rows + w - 1, cols + w - 1, C)."""

    def for_maps(self) -> Predictor:
        """Itself, ready to map whole blocks fast (a window network: its dense twin)."""

    @property
    def one_pass(self) -> bool:
        """Maps a block in one pass (False: a window network without a dense twin, which
        classifies one window at a time)."""

    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> Predictor: ...


@dataclass(frozen=True)
class WindowNetwork:
    """A window network's discriminator; mapped through its exact dense twin when it has one
    (models/dense.py), else one window at a time."""

    discriminator: keras.Model
    twin: keras.Model | None = None  # the exact dense twin, once for_maps made it
    file: ClassVar[str] = "discriminator.keras"
    per_pixel: ClassVar[bool] = False

    @property
    def window(self) -> int:
        return int(self.discriminator.input_shape[1])

    def probability(self, windows: np.ndarray) -> np.ndarray:
        from landslide_ssgan.models.ssgan import predict_probability

        return predict_probability(self.discriminator, windows)

    def block_probability(self, image: np.ndarray, valid: np.ndarray,
                          window: int) -> np.ndarray:
        from landslide_ssgan.models import dense as dense_twin

        logits = (dense_twin.dense_logits(self.twin, image) if self.twin is not None
                  else dense_twin.per_window_logits(self.discriminator, image))
        return dense_twin.probability_of(logits)

    def for_maps(self) -> WindowNetwork:
        from landslide_ssgan.models import dense as dense_twin

        return replace(self, twin=dense_twin.exact_dense_twin(self.discriminator))

    @property
    def one_pass(self) -> bool:
        return self.twin is not None

    def save(self, folder: Path) -> None:
        self.discriminator.save(folder / self.file)

    @classmethod
    def load(cls, folder: Path) -> WindowNetwork:
        import keras

        return cls(keras.saving.load_model(folder / cls.file, compile=False))


@dataclass(frozen=True)
class PatchNetwork:
    """A segmenter's U-Net: every pixel of a patch at once; with `views` (its bands), every
    answer the mean over the square's eight symmetries (unet.segment)."""

    segmenter: keras.Model
    views: Bands | None = None
    file: ClassVar[str] = "segmenter.keras"
    per_pixel: ClassVar[bool] = True

    @property
    def window(self) -> None:
        return None  # any size the pooling allows: the patch is in normalisation.json

    def probability(self, windows: np.ndarray) -> np.ndarray:
        from landslide_ssgan.models.unet import centre_probability

        return centre_probability(self.segmenter, windows, self.views)

    def pixel_probability(self, patches: np.ndarray) -> np.ndarray:
        from landslide_ssgan.models.unet import segment

        return segment(self.segmenter, patches, self.views)

    def block_probability(self, image: np.ndarray, valid: np.ndarray,
                          window: int) -> np.ndarray:
        from landslide_ssgan.models.unet import segment

        half, (rows, cols) = window // 2, valid.shape
        answer = segment(self.segmenter, image[None], self.views)[0]
        return answer[half:half + rows, half:half + cols]

    def for_maps(self) -> PatchNetwork:
        return self

    @property
    def one_pass(self) -> bool:
        return True

    def save(self, folder: Path) -> None:
        self.segmenter.save(folder / self.file)

    @classmethod
    def load(cls, folder: Path) -> PatchNetwork:
        import keras

        return cls(keras.saving.load_model(folder / cls.file, compile=False))


@dataclass(frozen=True)
class _Fitted:
    """A scikit-learn or statsmodels classifier in one joblib file; it costs per pixel, so a
    block is answered at its valid centres only."""

    model: Any
    per_pixel: ClassVar[bool] = False

    @property
    def window(self) -> None:
        return None  # in normalisation.json

    def for_maps(self) -> Self:
        return self

    @property
    def one_pass(self) -> bool:
        return True  # box filters of the block, then the valid centres at once

    def save(self, folder: Path) -> None:
        with atomic_path(folder / self.file) as tmp:  # type: ignore[attr-defined]
            joblib.dump(self.model, tmp)

    @classmethod
    def load(cls, folder: Path) -> Self:
        return cls(joblib.load(folder / cls.file))  # type: ignore[attr-defined]

    def block_probability(self, image: np.ndarray, valid: np.ndarray,
                          window: int) -> np.ndarray:
        out = np.full(valid.shape, np.nan, np.float32)
        out[valid] = self._centres_probability(image, valid, window)
        return out

    def _centres_probability(self, image: np.ndarray, valid: np.ndarray,
                             window: int) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Forest(_Fitted):
    """The random forest on window features (centre, mean, deviation)."""

    file: ClassVar[str] = "forest.joblib"

    def probability(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(forests.forest_probability(self.model, windows))

    def _centres_probability(self, image: np.ndarray, valid: np.ndarray,
                             window: int) -> np.ndarray:
        features = forests.dense_window_features(image, window)  # box filters of the block
        return forests.probability_of_features(self.model, features[valid])


@dataclass(frozen=True)
class Glm(_Fitted):
    """The logistic regression on the centre pixel's bands."""

    model: CentreLogit
    file: ClassVar[str] = "glm.joblib"

    def probability(self, windows: np.ndarray) -> np.ndarray:
        return self.model.window_probability(windows)

    def _centres_probability(self, image: np.ndarray, valid: np.ndarray,
                             window: int) -> np.ndarray:
        half = window // 2
        centres = image[half:image.shape[0] - half, half:image.shape[1] - half]
        return self.model.probability(centres[valid])


FAMILIES: tuple[type[Predictor], ...] = (WindowNetwork, PatchNetwork, Forest, Glm)
FILES: tuple[str, ...] = tuple(family.file for family in FAMILIES)


def family_of(folder: Path) -> type[Predictor] | None:
    """The family whose file the folder holds (None: no model)."""
    return next((f for f in FAMILIES if (folder / f.file).is_file()), None)
