"""The real-vs-generated check: near 0.5 for windows from the same source, near 1 for fakes."""

from __future__ import annotations

import numpy as np

from landslide_ssgan.evaluation.realism import real_vs_generated_auroc


def test_same_source_is_indistinguishable_and_noise_is_not() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 13, 13, 3)).astype(np.float32)
    alike = rng.normal(size=(400, 13, 13, 3)).astype(np.float32)
    assert abs(real_vs_generated_auroc(real, alike, seed=0, trees=50) - 0.5) < 0.1
    smooth = np.repeat(np.repeat(rng.normal(size=(400, 1, 1, 3)), 13, 1), 13, 2)
    assert real_vs_generated_auroc(real, smooth.astype(np.float32), seed=0, trees=50) > 0.95
