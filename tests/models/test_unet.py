"""The U-Net segmenter: its masked losses, its views, its tiled maps, and that it learns a shape.

Fast: tiny networks on synthetic patches and a 128 x 128 GeoTIFF made in `tmp_path`.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from sklearn.metrics import roc_auc_score

from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.inference.mapping import WindowModel, probability_map
from landslide_ssgan.models import bundle
from landslide_ssgan.models.augment import SYMMETRIES, Bands, symmetric_view, undo_symmetry
from landslide_ssgan.models.predictors import PatchNetwork
from landslide_ssgan.models.prior import Prior
from landslide_ssgan.models.unet import (
    IGNORED,
    Segmenter,
    augmented,
    build_unet,
    centre_probability,
    pixel_loss,
    segment,
)
from landslide_ssgan.training.fit import seed_everything


@pytest.mark.parametrize("kind", ["cross_entropy", "focal", "dice"])
def test_ignored_pixels_count_nothing_in_any_loss(kind: str) -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, size=(2, 8, 8)).astype(np.uint8)
    targets[:, :4] = IGNORED
    logits = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
    changed = logits.copy()
    changed[:, :4] = rng.normal(size=(2, 4, 8, 2)) * 10  # only where the targets are ignored
    base = float(pixel_loss(targets, logits, kind))
    assert float(pixel_loss(targets, changed, kind)) == pytest.approx(base, rel=1e-6)
    wrong = logits.copy()
    wrong[:, 4:, :, 1] -= 10 * (2 * targets[:, 4:].astype(np.float32) - 1)  # known pixels
    assert float(pixel_loss(targets, wrong, kind)) > base


def test_segment_answers_any_size_and_the_centre_of_a_window() -> None:
    seed_everything(0)
    network = build_unet(3, depth=2, width=4)
    image = np.random.default_rng(1).normal(size=(2, 13, 19, 3)).astype(np.float32)
    probability = segment(network, image)
    assert probability.shape == (2, 13, 19)
    assert ((probability > 0) & (probability < 1)).all()
    windows = image[:, :13, :13]
    assert np.allclose(centre_probability(network, windows), segment(network, windows)[:, 6, 6],
                       atol=1e-6)


def test_a_view_turns_the_targets_with_the_patch() -> None:
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 2, size=(5, 8, 8)).astype(np.uint8)
    patch = np.stack([targets.astype(np.float32), rng.normal(size=(5, 8, 8))], -1)
    bands = Bands(None, 0.0, 1.0, (False, False))
    for seed in range(4):
        viewed, turned = augmented(patch.astype(np.float32), targets, bands,
                                   np.array([seed, 7], np.int32))
        assert np.array_equal(np.asarray(viewed)[..., 0], np.asarray(turned).astype(np.float32))


def test_a_map_over_the_symmetries_turns_with_the_image_and_its_aspect() -> None:
    """The mean over the square's eight symmetries is the same map whichever way the image
    lies: turn or mirror the image (its aspect band turned too, as a slope's compass
    direction turns with the ground) and the map turns with it. It fails if a view or its
    undoing goes the wrong way, or if the aspect band is left as it was."""
    seed_everything(7)
    network = build_unet(3, depth=2, width=4)
    rng = np.random.default_rng(7)
    names, mean, std = ("red", "aspect", "slope"), np.array([0, 180, 10]), np.array([1, 100, 5])
    degrees = rng.uniform(0, 360, size=(2, 16, 16))
    degrees[:, :3, :3] = -1.0  # flat ground stays flat
    image = np.stack([rng.normal(size=(2, 16, 16)), (degrees - 180) / 100,
                      rng.normal(size=(2, 16, 16))], -1).astype(np.float32)
    views = Bands.of_map(names, mean, std)
    mean_map = segment(network, image, views)
    assert np.abs(mean_map - segment(network, image)).max() > 1e-4  # the views were used
    for turns, mirrored in SYMMETRIES:
        turned = symmetric_view(image, views, turns, mirrored)
        back = undo_symmetry(segment(network, turned, views), turns, mirrored)
        assert np.abs(back - mean_map).max() < 1e-5, (turns, mirrored)
    assert np.array_equal(undo_symmetry(symmetric_view(image[..., :1], Bands.of_map(
        ("red",), mean[:1], std[:1]), 3, True)[..., 0], 3, True), image[..., 0])


def _stack(tmp_path: Path, size: int = 128) -> Path:
    """A 128 x 128, 2-band stack with nodata in one corner and a NaN pixel inside."""
    data = np.random.default_rng(3).normal(size=(2, size, size)).astype(np.float32)
    data[:, :5, :7] = np.nan
    data[:, 60, 61] = np.nan
    path = tmp_path / "stack.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=2,
                       dtype="float32", crs="EPSG:32646", nodata=np.nan,
                       transform=from_origin(0, size * 10.0, 10.0, 10.0)) as dst:
        dst.write(data)
        dst.descriptions = ("a", "b")
    return path


def _segmenter_folder(tmp_path: Path, patch: int) -> Path:
    seed_everything(4)
    network = build_unet(2, depth=2, width=4)
    folder = tmp_path / "model"
    norm = Normalisation(("a", "b"), np.zeros(2), np.ones(2), patch)
    bundle.save_model(folder, PatchNetwork(network), norm)
    return folder


@pytest.mark.parametrize("symmetries", [1, 8])
def test_a_tiled_map_is_the_same_at_two_tile_sizes_with_edges_and_nodata(
        tmp_path: Path, symmetries: int) -> None:
    """Half a patch of context (32 pixels) outreaches this U-Net's receptive field, so every
    pixel is the same whatever tile it is computed in (to float rounding), with one pass or
    the mean over the symmetries (context on every side, so on every side of a turned tile)."""
    stack = _stack(tmp_path)
    folder = _segmenter_folder(tmp_path, patch=64)
    bundle.save_info(folder, {"symmetries": symmetries})
    model = WindowModel.load(folder)
    small, _ = probability_map(stack, model, block_size=32)
    large, grid = probability_map(stack, model, block_size=128)
    assert small.shape == grid.shape == (128, 128)
    nodata = np.isnan(rasterio.open(stack).read(1))
    assert np.array_equal(np.isnan(small), nodata) and np.array_equal(np.isnan(large), nodata)
    assert np.nanmax(np.abs(small - large)) < 1e-4
    area = np.zeros(grid.shape, bool)
    area[40:50, 40:50] = True  # a segmenter keeps whole blocks: the same tiles as the map
    only, _ = probability_map(stack, model, block_size=128, only=area)
    assert np.array_equal(only, large, equal_nan=True)


def test_a_segmenter_answers_with_the_symmetries_its_folder_records(tmp_path: Path) -> None:
    """calibrate records calibrate.symmetries in model.json; every reader of the folder (the
    maps, the served model, the window protocol) then answers with that mean."""
    folder = _segmenter_folder(tmp_path, patch=64)
    patches = np.random.default_rng(8).normal(size=(2, 64, 64, 2)).astype(np.float32)
    network = bundle.load_bundle(folder).predictor.segmenter
    once = bundle.load_bundle(folder).raw_pixel_probability(patches)
    assert np.allclose(once, segment(network, patches), atol=1e-6)
    bundle.save_info(folder, {"kind": "unet", "symmetries": 8})
    loaded = bundle.load_bundle(folder)
    views = Bands.of_map(("a", "b"), np.zeros(2), np.ones(2))
    assert np.allclose(loaded.raw_pixel_probability(patches), segment(network, patches, views),
                       atol=1e-6)
    assert np.abs(loaded.raw_pixel_probability(patches) - once).max() > 1e-4
    assert np.allclose(loaded.probability(patches), segment(network, patches, views)[:, 32, 32],
                       atol=1e-6)


def test_the_window_protocol_reads_a_segmenter_folder(tmp_path: Path) -> None:
    folder = _segmenter_folder(tmp_path, patch=64)
    loaded = bundle.load_bundle(folder)
    assert loaded.per_pixel and loaded.window == 64
    windows = np.random.default_rng(5).normal(size=(3, 64, 64, 2)).astype(np.float32)
    assert loaded.probability(windows).shape == (3,)


def _scars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Patches where a landslide is a bright 4 x 8 body and bright single pixels (the same
    value) are not: only the shape tells them apart."""
    x = rng.normal(size=(n, 32, 32, 1)).astype(np.float32)
    y = np.zeros((n, 32, 32), np.uint8)
    for i in range(n):
        r, c = rng.integers(2, 22, size=2)
        x[i, r:r + 8, c:c + 4, 0] = 3.0
        y[i, r:r + 8, c:c + 4] = 1
        speckle = rng.random((32, 32)) < 0.03
        x[i, speckle & (y[i] == 0), 0] = 3.0
    return x, y


def test_a_segmenter_learns_a_shape_that_a_pixel_cannot_tell() -> None:
    seed_everything(6)
    rng = np.random.default_rng(6)
    x, y = _scars(64, rng)
    model = Segmenter(build_unet(1, depth=2, width=8), class_weights=(1.0, 3.0))
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    test_x, test_y = _scars(16, rng)
    probability = segment(model.network, test_x)
    bright = test_x[..., 0] == 3.0  # a pixel's value alone: the scars and the speckle
    assert roc_auc_score(test_y[bright], probability[bright]) > 0.9


def test_the_served_segmenter_answers_patches_and_every_pixel(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """The MLflow model of a segmenter: raw patches in, the centre pixel's probability out,
    or with `per_pixel` every pixel's (what `landslide serve` answers)."""
    import mlflow

    from landslide_ssgan.ops import pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    folder = _segmenter_folder(tmp_path, patch=16)
    with mlflow.start_run():
        uri = pyfunc.log_window_model(folder, [])
    served = mlflow.pyfunc.load_model(uri)
    assert served.metadata.metadata["input"]["bands"] == ["a", "b"]  # the band order, named
    assert served.metadata.metadata["input"]["shape"] == ["N", 16, 16, 2]
    patches = np.random.default_rng(7).normal(size=(3, 16, 16, 2)).astype(np.float32)
    every = np.asarray(served.predict(patches, params={"per_pixel": True}))
    assert every.shape == (3, 16, 16)
    assert np.allclose(every, segment(bundle.load_bundle(folder).predictor.segmenter, patches),
                       atol=1e-6)
    assert np.allclose(np.asarray(served.predict(patches)), every[:, 8, 8], atol=1e-6)
    # uncalibrated: as trained by default, and the area's scale cannot be asked for
    with pytest.raises(Exception, match="records no prior"):
        served.predict(patches, params={"prior_correction": True})
    # calibrated: by default at the area's prevalence, the scale the maps are written on
    prior = Prior(0.5, 0.02, "test")
    bundle.save_info(folder, {**bundle.read_info(folder), "prior": prior.as_dict()})
    with mlflow.start_run():
        calibrated = mlflow.pyfunc.load_model(pyfunc.log_window_model(folder, []))
    assert np.allclose(np.asarray(calibrated.predict(patches)), prior.correct(every[:, 8, 8]),
                       atol=1e-6)
    assert np.allclose(np.asarray(calibrated.predict(patches, params={
        "prior_correction": False})), every[:, 8, 8], atol=1e-6)
