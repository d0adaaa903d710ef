"""The map threshold is chosen on the validation area only when that area can choose it."""

from __future__ import annotations

import numpy as np

from landslide_ssgan.data.sampling import AREA_CODES
from landslide_ssgan.evaluation import map_metrics, scoring


def _ground(slides_in_val: int) -> tuple[scoring.Ground, np.ndarray]:
    """A 40 x 40 grid: the top half validation, the bottom half test; `slides_in_val` 2 x 2
    landslides in the validation half, whose probabilities are 0.8 (0.1 elsewhere)."""
    labels = np.zeros((40, 40), np.uint8)
    ids = np.zeros((40, 40), np.int32)
    areas = np.full((40, 40), AREA_CODES["test"], np.uint8)
    areas[:20] = AREA_CODES["val"]
    probability = np.full((40, 40), 0.1, np.float32)
    for n in range(slides_in_val):
        row, col = 2 + 5 * (n // 6), 2 + 6 * (n % 6)
        labels[row:row + 2, col:col + 2], ids[row:row + 2, col:col + 2] = 1, n + 1
        probability[row:row + 2, col:col + 2] = 0.8
    labels[30:32, 30:32], ids[30:32, 30:32] = 1, 99  # one in the test half
    return scoring.Ground(map_metrics.Truth(labels, ids), areas, 100.0), probability


def test_a_validation_area_with_too_few_landslides_chooses_no_threshold() -> None:
    ground, probability = _ground(3)
    assert map_metrics.landslides_in(ground.truth, ground.area("val")).size == 3
    threshold, source = scoring.validation_threshold(probability, ground, None, 5)
    assert threshold == 0.5
    assert "holds 3 landslides, fewer than calibrate.min_val_landslides (5)" in source


def test_enough_validation_landslides_choose_the_best_f1_threshold() -> None:
    ground, probability = _ground(5)
    threshold, source = scoring.validation_threshold(probability, ground, None, 5)
    assert threshold == np.float32(0.8)  # every landslide pixel above, nothing else
    assert source.startswith("best F1 on the validation area")
