"""Prior correction: known answers, and the class map does not move with it."""

from __future__ import annotations

import numpy as np
import pytest

from landslide_ssgan.models.prior import Prior, trained_share


def test_known_answers() -> None:
    prior = Prior(trained=0.5, area=0.01, source="test")
    # at the trained prior an undecided window is as likely as the area's base rate
    assert prior.correct(0.5) == pytest.approx(0.01)
    # odds 9 times the area's odds (1/9) give even odds
    assert Prior(0.5, 0.1, "test").correct(0.9) == pytest.approx(0.5)
    # trained at 0.25 landslide share, mapped where it is 0.25: nothing moves
    same = Prior(0.25, 0.25, "test").correct(np.array([0.1, 0.7], np.float32))
    np.testing.assert_allclose(same, [0.1, 0.7], rtol=1e-6)
    assert same.dtype == np.float32
    # the logit moves by the difference of the log prior odds
    p = np.array([0.2, 0.6, 0.95])
    shifted = np.log(prior.correct(p) / (1 - prior.correct(p))) - np.log(p / (1 - p))
    np.testing.assert_allclose(shifted, np.log(0.01 / 0.99), rtol=1e-9)
    np.testing.assert_array_equal(np.isnan(prior.correct(np.array([np.nan, 0.3]))),
                                  [True, False])
    np.testing.assert_array_equal(prior.correct(np.array([0.0, 1.0])), [0.0, 1.0])


def test_the_validation_threshold_moves_with_the_map() -> None:
    """The class map at the model's threshold is the same pixel for pixel after correction,
    the threshold itself among the map's values (as validation picks it)."""
    rng = np.random.default_rng(0)
    probability = rng.random(200_000).astype(np.float32)
    prior = Prior(0.5, 0.0022, "test")
    corrected = prior.correct(probability)
    for threshold in (float(probability[17]), float(probability[4242]), 0.5, 0.999):
        np.testing.assert_array_equal(corrected >= prior.correct_threshold(threshold),
                                      probability >= threshold)


def test_trained_share_and_bad_priors() -> None:
    assert trained_share(np.array([1, 0, 0, 0])) == 0.25
    assert trained_share(np.array([1, 0, 0, 0]), class_weighting=True) == 0.5
    assert Prior.from_dict(Prior(0.5, 0.01, "x").as_dict()) == Prior(0.5, 0.01, "x")
    with pytest.raises(ValueError, match="area"):
        Prior(0.5, 0.0, "x")
