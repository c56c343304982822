"""Fine-tune metrics pooled over held-out images as `semzoo evaluate` pools them (issue 17 parts 2, 6)."""

from __future__ import annotations

import math

import pytest

from zoo.evaluation.gaps import GapStats
from zoo.evaluation.tables import json_table
from zoo.training.finetune_metrics import ROWS, pool


def test_two_images_pool_gap_counts_and_average_psnr():
    # Image A: 3 gaps, 2 missed, 1 compared (error 4 nm); image B: 1 gap, missed, none compared.
    a = {row: GapStats(3, 2, 1, 4.0, 2, 1) for row in ROWS}
    b = {row: GapStats(1, 1, 0, math.nan, 0, 0) for row in ROWS}
    tables = [{row: {"psnr_db": 20.0, "ssim": 0.5} for row in ROWS},
              {row: {"psnr_db": 23.0, "ssim": math.nan} for row in ROWS}]
    table, gaps = pool(tables, [a, b])
    assert gaps["parent"] == GapStats(4, 3, 1, 4.0, 2, 1)
    cols = table["finetuned"]
    # Counts over counts (3/4), not the mean of the images' percentages (83.3).
    assert cols["undetected_gaps_percent"] == pytest.approx(75.0)
    assert cols["gap_size_error_nm"] == pytest.approx(4.0)  # B compared nothing: A's error alone
    assert cols["invented_gaps_percent"] == pytest.approx(50.0)
    assert cols["psnr_db"] == pytest.approx(21.5) and cols["ssim"] == pytest.approx(0.5)  # NaN skipped
    assert json_table({"x": {"v": math.nan, "w": 1.234567}}) == {"x": {"v": None, "w": 1.2346}}


def test_images_without_truth_give_no_gap_columns():
    tables = [{row: {"psnr_db": 20.0, "ssim": 0.5} for row in ROWS}]
    table, gaps = pool(tables, [{}])
    assert gaps == {} and set(table["parent"]) == {"psnr_db", "ssim"}
