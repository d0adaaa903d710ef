"""Inference as a traced graph: the eager model's answer, any image size, one trace, and the
graph freed with its model."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import keras
import numpy as np

from landslide_ssgan.models.graphs import ATTRIBUTE, run_graph
from landslide_ssgan.models.unet import build_unet


def test_the_graph_answers_as_the_model_for_any_size_with_one_trace() -> None:
    network = build_unet(2, depth=2, width=4)
    rng = np.random.default_rng(0)
    for shape in ((1, 16, 16, 2), (3, 32, 48, 2)):
        images = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(run_graph(network, images),
                                   np.asarray(network(images, training=False)), atol=1e-5)
    assert getattr(network, ATTRIBUTE)[None].experimental_get_tracing_count() == 1


def test_a_model_and_its_graph_are_freed_and_it_still_saves(tmp_path: Path) -> None:
    network = build_unet(2, depth=2, width=4)
    image = np.ones((1, 16, 16, 2), np.float32)
    before = run_graph(network, image)
    network.save(tmp_path / "segmenter.keras")  # the graph is no saved state
    loaded = keras.saving.load_model(tmp_path / "segmenter.keras", compile=False)
    np.testing.assert_array_equal(run_graph(loaded, image), before)
    alive = weakref.ref(network)
    del network
    gc.collect()
    assert alive() is None  # nothing global holds a model that was mapped once
