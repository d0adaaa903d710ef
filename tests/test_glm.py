"""The GLM: coefficients recovered on data with a known answer, a full-rank design whatever
the one-hot layers, and maps of the forest and the GLM equal to per-window predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.stack import Stack
from landslide_ssgan.data.windows import cut_windows, normalised_image
from landslide_ssgan.inference.mapping import WindowModel
from landslide_ssgan.models import forest
from landslide_ssgan.models.bundle import ModelBundle
from landslide_ssgan.models.glm import fit_glm, independent_columns
from landslide_ssgan.models.predictors import Forest, Glm


def test_the_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 2))
    labels = rng.random(20_000) < 1 / (1 + np.exp(-(-1.0 + 2.0 * x[:, 0] - 0.5 * x[:, 1])))
    model = fit_glm(x, labels, ("a", "b"))
    np.testing.assert_allclose(model.params, [-1.0, 2.0, -0.5], atol=0.08)
    assert list(model.table.index) == ["intercept", "a", "b"]
    assert model.table.loc["a", "p_value"] < 1e-10
    assert (model.table["std_error"] > 0).all()


def test_one_hot_layers_and_constant_bands_leave_a_full_rank_design() -> None:
    rng = np.random.default_rng(1)
    level = rng.integers(0, 3, 500)
    one_hot = np.eye(3)[level]            # sums to one: collinear with the intercept
    constant = np.zeros((500, 1))         # a class absent from the training pixels
    x = np.column_stack([rng.normal(size=500), one_hot, constant])
    assert independent_columns(x) == [0, 1, 2]  # the last level and the constant dropped
    labels = rng.random(500) < 0.3
    model = fit_glm(x, labels, ("slope", "a", "b", "c", "absent"))
    assert model.names == ("slope", "a", "b")
    assert np.isfinite(model.table.to_numpy()).all()


def _block(crop_stack: Stack) -> tuple[np.ndarray, Normalisation]:
    data = crop_stack.data
    mean = np.nanmean(data, axis=(1, 2))
    std = np.nanstd(data, axis=(1, 2)) + 1e-6
    return data, Normalisation(crop_stack.grid.band_names, mean, std, 13)


@pytest.mark.parametrize("kind", ["forest", "glm"])
def test_dense_maps_of_forest_and_glm_equal_per_window_predictions(
        kind: str, crop_stack: Stack) -> None:
    data, norm = _block(crop_stack)
    bands = list(range(data.shape[0]))
    image = normalised_image(data, bands, norm.mean, norm.std, 13)
    rng = np.random.default_rng(2)
    rows, cols = rng.integers(0, data.shape[1], 400), rng.integers(0, data.shape[2], 400)
    windows = cut_windows(image, rows, cols, 13)
    labels = (windows[:, 6, 6, 4] > np.median(windows[:, 6, 6, 4])).astype(int)
    if kind == "forest":
        model = ModelBundle(norm, Forest(RandomForestClassifier(20, random_state=0).fit(
            forest.window_features(windows), labels)))
    else:
        model = ModelBundle(norm, Glm(fit_glm(windows[:, 6, 6, :], labels,
                                              crop_stack.grid.band_names)))
    mapper = WindowModel.from_bundle(model)
    raw = np.pad(data, ((0, 0), (6, 6), (6, 6)), constant_values=np.nan)  # the block + halo
    dense = mapper.block_probability(raw)
    # the windows the mapper sees: the block normalised as it normalises (float32 statistics)
    same = np.nan_to_num((np.moveaxis(raw, 0, -1) - mapper.mean) / mapper.std).astype(np.float32)
    r, c = np.meshgrid(np.arange(data.shape[1]), np.arange(data.shape[2]), indexing="ij")
    per_window = model.probability(cut_windows(same, r.ravel(), c.ravel(), 13)).reshape(
        dense.shape)
    valid = np.isfinite(dense)
    assert valid.mean() > 0.5
    assert np.isfinite(data).all(axis=0)[valid].all()
    if kind == "forest":  # the same features to the bit, so the same trees' answers
        np.testing.assert_array_equal(dense[valid], per_window[valid].astype(np.float32))
    else:
        np.testing.assert_allclose(dense[valid], per_window[valid], atol=1e-6)



def test_a_singular_newton_hessian_falls_back_to_bfgs() -> None:
    """A real case: the labelled centres of the study's 10 % budget, seed 2, on Chattogram
    (202 windows; the Tbb lithology level is seen only on non-landslides). Newton's method
    stopped `landslide study` with LinAlgError("Singular matrix"); the fit now completes."""
    from pathlib import Path

    import statsmodels.api as sm

    case = np.load(Path(__file__).with_name("glm_singular_hessian.npz"))
    centres, labels = case["centres"].astype(np.float64), case["labels"].astype(bool)
    names = tuple(str(n) for n in case["names"])
    columns = independent_columns(centres)
    newton = sm.Logit(labels.astype(float),
                      sm.add_constant(centres[:, columns], has_constant="add"))
    with pytest.raises(np.linalg.LinAlgError):
        newton.fit(disp=0, maxiter=200)
    model = fit_glm(centres, labels, names)
    assert np.isfinite(model.params).all()
    assert ((model.probability(centres) > 0.5) == labels).mean() > 0.9
