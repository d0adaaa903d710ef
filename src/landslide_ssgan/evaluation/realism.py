"""Are the generator's windows plausible at all? A classifier between real and generated
windows answers it.

The SSGAN's unlabelled and generated losses help only if the generator produces windows near
the data's manifold (Salimans et al.; Dai et al. argue a "bad", complementary generator can
help too, but not a trivially separable one). If a small random forest on the window features
tells real from generated windows almost perfectly, the discriminator's real-vs-fake task is
easy and teaches it little about landslides. Cross-validated AUROC: 0.5 = indistinguishable,
1.0 = every generated window is recognised.

Pure numpy / scikit-learn (and the generator it is handed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from landslide_ssgan.data.source import WindowSource
from landslide_ssgan.models.forest import window_features


def real_and_generated(generator: Any, latent_dim: int, source: WindowSource, n: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` real windows from the unlabelled pool and `n` of the generator's (a Keras model
    from noise to normalised windows), for the check below."""
    rng = np.random.default_rng(seed)
    rows, cols, _ = source.unlabelled_part()
    pick = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    real = source.pixels.cut(rows[pick], cols[pick])
    noise = rng.normal(size=(len(pick), latent_dim)).astype(np.float32)
    return real, np.asarray(generator.predict(noise, verbose=0))


def real_vs_generated_auroc(real: np.ndarray, generated: np.ndarray, seed: int,
                            trees: int = 100, folds: int = 5) -> float:
    """Out-of-fold AUROC of a forest telling `real` (N, w, w, C) from `generated` windows."""
    features = np.concatenate([window_features(real), window_features(generated)])
    is_generated = np.r_[np.zeros(len(real)), np.ones(len(generated))]
    forest = RandomForestClassifier(n_estimators=trees, min_samples_leaf=2, random_state=seed,
                                    n_jobs=-1)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(forest, features, is_generated, cv=split,
                               method="predict_proba")[:, 1]
    return float(roc_auc_score(is_generated, scores))
