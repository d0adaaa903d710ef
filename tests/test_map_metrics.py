"""Map scores on hand-made rasters whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from landslide_ssgan.evaluation.map_metrics import (
    Truth,
    area_scores,
    choose_threshold,
    headline,
    object_scores,
    pixel_scores,
    scored_pixels,
)
from landslide_ssgan.inference.bodies import Bodies

UNKNOWN, STABLE, LANDSLIDE = 255, 0, 1


def _truth() -> Truth:
    """A 10 x 10 area: landslide 1 (4 px) top left, landslide 2 (2 px) bottom right, a 3 x 3
    stable patch, everything else unknown."""
    labels = np.full((10, 10), UNKNOWN, np.uint8)
    ids = np.zeros((10, 10), np.int32)
    labels[1:3, 1:3], ids[1:3, 1:3] = LANDSLIDE, 1
    labels[8, 7:9], ids[8, 7:9] = LANDSLIDE, 2
    labels[5:8, 1:4] = STABLE
    return Truth(labels, ids)


def _bodies(labels: np.ndarray) -> Bodies:
    n = int(labels.max())
    return Bodies(labels, np.ones(n), np.ones(n))


def test_prevalence_and_pixel_scores_on_all_ground() -> None:
    truth = _truth()
    probability = np.zeros((10, 10))
    probability[1:3, 1:3] = 0.9      # landslide 1 found: 4 TP
    probability[0, 5:9] = 0.8        # 4 FP on unknown ground
    probability[9, 9] = np.nan       # no data: not scored
    area = np.ones((10, 10), bool)
    is_landslide, values = scored_pixels(probability, truth, area, "all")
    assert is_landslide.size == 99 and is_landslide.sum() == 6
    found = pixel_scores(is_landslide, values, 0.5)
    assert found["prevalence"] == pytest.approx(6 / 99)
    assert found["precision"] == pytest.approx(4 / 8)
    assert found["recall"] == pytest.approx(4 / 6)
    assert found["iou"] == pytest.approx(4 / (4 + 4 + 2))
    assert found["f1"] == pytest.approx(2 * 4 / (2 * 4 + 4 + 2))
    assert found["flagged_share"] == pytest.approx(8 / 99)
    assert found["auprc"] == pytest.approx(average_precision_score(is_landslide, values))
    assert found["auroc"] == pytest.approx(roc_auc_score(is_landslide, values))


def test_labelled_reading_ignores_unknown_ground_and_reports_it_apart() -> None:
    truth = _truth()
    probability = np.zeros((10, 10))
    probability[1:3, 1:3] = 0.9
    probability[0, :] = 0.8          # 10 unknown pixels flagged: no false positive here
    probability[5, 1] = 0.7          # 1 stable pixel flagged: a false positive
    area = np.ones((10, 10), bool)
    result = area_scores(probability, truth, area, 0.5, _bodies(np.zeros((10, 10), np.int32)))
    labelled = result["labelled"]
    assert labelled["pixels"] == 6 + 9
    assert labelled["precision"] == pytest.approx(4 / 5)
    assert labelled["prevalence"] == pytest.approx(6 / 15)
    unknown = 100 - 6 - 9
    assert result["unknown_flagged_share"] == pytest.approx(10 / unknown)
    assert result["inventory_share"] == pytest.approx(6 / 100)
    assert result["all"]["precision"] == pytest.approx(4 / 15)


def test_area_limits_what_is_scored() -> None:
    truth = _truth()
    probability = np.full((10, 10), 0.2)
    probability[8, 7:9] = 0.9
    area = np.zeros((10, 10), bool)
    area[6:, 5:] = True              # holds landslide 2 only
    result = pixel_scores(*scored_pixels(probability, truth, area, "all"), 0.5)
    assert result["pixels"] == 20 and result["recall"] == 1.0 and result["precision"] == 1.0
    assert result["auprc"] == pytest.approx(1.0)


def test_object_recall_and_precision() -> None:
    truth = _truth()
    bodies = np.zeros((10, 10), np.int32)
    bodies[2, 2:4] = 1               # overlaps landslide 1
    bodies[7, 6] = 2                 # touches landslide 2 at a corner (8, 7)
    bodies[4:6, 6:8] = 3             # far from every landslide
    area = np.ones((10, 10), bool)
    found = object_scores(_bodies(bodies), truth, area)
    assert found["inventory_landslides"] == 2 and found["mapped_bodies"] == 3
    assert found["object_recall"] == pytest.approx(1 / 2)   # landslide 2 is touched, not hit
    assert found["object_precision"] == pytest.approx(2 / 3)
    only_left = np.zeros((10, 10), bool)
    only_left[:, :5] = True          # landslide 1 and body 1 only
    left = object_scores(_bodies(bodies), truth, only_left)
    assert left["inventory_landslides"] == 1 and left["mapped_bodies"] == 1
    assert left["object_recall"] == 1.0 and left["object_precision"] == 1.0


def test_threshold_of_best_f1_and_of_a_target_recall() -> None:
    is_landslide = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], bool)
    probability = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    # at 0.8: P 1, R 3/4, F1 0.857; at 0.6: P 4/5, R 1, F1 0.889 (the best)
    assert choose_threshold(is_landslide, probability) == pytest.approx(0.6)
    assert choose_threshold(is_landslide, probability, target_recall=0.7) == pytest.approx(0.8)
    assert choose_threshold(is_landslide, probability, target_recall=1.0) == pytest.approx(0.6)
    assert choose_threshold(np.zeros(4, bool), probability[:4]) == 0.5  # nothing to find


def test_headline_holds_the_figures_a_map_is_judged_by() -> None:
    truth = _truth()
    probability = np.zeros((10, 10))
    probability[1:3, 1:3] = 0.9
    bodies = np.zeros((10, 10), np.int32)
    bodies[1:3, 1:3] = 1
    row = headline(area_scores(probability, truth, np.ones((10, 10), bool), 0.5,
                               _bodies(bodies)))
    assert set(row) == {"auprc", "auroc", "f1", "iou", "precision", "recall", "flagged_share",
                        "object_recall", "object_precision", "threshold"}
    assert row["object_recall"] == 0.5 and row["object_precision"] == 1.0
    assert row["flagged_share"] == 0.04


def test_a_point_inventory_is_told_apart_and_its_report_says_to_read_the_objects() -> None:
    """Points burn one pixel per landslide: their pixel scores count one pixel of each scar,
    so the report says so and points to the object scores; polygons get no such note."""
    from landslide_ssgan.evaluation.map_metrics import point_inventory
    from landslide_ssgan.reporting.tables import map_table

    polygons = _truth()  # landslides of 4 and 2 pixels
    labels = np.full((10, 10), STABLE, np.uint8)
    ids = np.zeros((10, 10), np.int32)
    for i, (row, col) in enumerate([(1, 1), (5, 5), (8, 2)], start=1):
        labels[row, col], ids[row, col] = LANDSLIDE, i
    points = Truth(labels, ids)
    probability = np.zeros((10, 10))
    probability[0:3, 0:3] = 0.9  # a body over the first point's whole scar
    bodies = np.zeros((10, 10), np.int32)
    bodies[0:3, 0:3] = 1
    area = np.ones((10, 10), bool)
    scored = {truth_name: area_scores(probability, truth, area, 0.5, _bodies(bodies))
              for truth_name, truth in (("points", points), ("polygons", polygons))}
    assert scored["points"]["objects"]["median_landslide_pixels"] == 1.0
    assert scored["polygons"]["objects"]["median_landslide_pixels"] == 3.0
    assert point_inventory(scored["points"]["objects"])
    assert not point_inventory(scored["polygons"]["objects"])
    assert scored["points"]["objects"]["object_recall"] == pytest.approx(1 / 3)
    for name, expected in (("points", True), ("polygons", False)):
        table = map_table({"ssgan": {"test": scored[name], "val": scored[name]}}, "joint")
        assert ("marks each landslide with one pixel" in table) is expected
