"""docs/models/NAME.md rendered from the cards; the committed pages equal what the cards render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.registry.card import new_card, write_card
from zoo.registry.model_doc import HEADER, model_doc_markdown, stale_model_docs, write_model_docs
from zoo.registry.publish import read_evaluation
from zoo.registry.store import Zoo

REPO = Path(__file__).resolve().parents[2]
VERSIONS = {"semzoo": "0.1.0", "tensorflow": "2.21.0", "keras": "3.15.1"}
TRAINING = {"pairs": 40, "patches": 1657, "simulated": True, "dataset_hash": "ab" * 32,
            "steps": 4600, "preset": "small"}
BY_WIDTH = {"edges_nm": [0.0, 7.1, 14.2, None], "rows": {
    "target": [{"n_gaps": 2274, "n_undetected": 1353, "percent": 59.5}] * 3,
    "output": [{"n_gaps": 921, "n_undetected": 612, "percent": 66.45},
               {"n_gaps": 2687, "n_undetected": 889, "percent": 33.09},
               {"n_gaps": 5399, "n_undetected": 567, "percent": 10.5}],
    "input": [{"n_gaps": 921, "n_undetected": 662, "percent": 71.9}] * 3}}
BY_SAMPLING = {"classes": ["an input sample in the gap", "no input sample in the gap"], "rows": {
    "output": [{"n_gaps": 6030, "n_undetected": 700, "percent": 11.61},
               {"n_gaps": 2977, "n_undetected": 1369, "percent": 45.99}]}}
EVALUATION = {
    "pairs": 4,
    "table": {  # sorted keys, as a card stores them
        "input": {"psnr_db": 23.1671, "ssim": 0.6123, "undetected_gaps_percent": None},
        "nearest": {"psnr_db": 22.5845, "ssim": 0.6202, "undetected_gaps_percent": None},
        "output": {"psnr_db": 24.8518, "ssim": 0.6376, "undetected_gaps_percent": None},
        "target": {"psnr_db": None, "ssim": None, "undetected_gaps_percent": None},
    },
    "undetected_by_width": BY_WIDTH,
    "undetected_by_input_sampling": BY_SAMPLING,
    "calibration_note": {"odd": [1, 2]},
}


def _publish(root: Path, name: str, version: int, **changes) -> None:
    card = new_card(name=name, sample_type=name, input_pixel_size_nm=14.2, scale=2,
                    tile={"size": 288, "overlap": 72, "divisor": 8}, training=TRAINING,
                    versions=VERSIONS, created="2026-12-01T21:11:03Z", **changes)
    write_card(root / name / str(version), card)


@pytest.fixture
def card_zoo(tmp_path) -> Zoo:
    root = tmp_path / "models"
    _publish(root, "gold", 1)
    _publish(root, "gold", 2, evaluation=EVALUATION, parent="gold:1")
    zoo = Zoo(root)
    zoo.set_label("gold", 1, "stable")
    return zoo


def test_repository_model_docs_are_in_sync_with_the_cards():
    """docs/models/*.md must be exactly what `semzoo zoo docs` renders from models/."""
    zoo = Zoo(REPO / "models")
    pages = REPO / "docs" / "models"
    assert sorted(p.stem for p in pages.glob("*.md")) == zoo.models()
    assert stale_model_docs(zoo, pages) == [], "docs/models is stale: run `semzoo zoo docs`"


def test_page_has_every_version_newest_first_and_the_full_evaluation(card_zoo):
    page = model_doc_markdown(card_zoo, "gold")
    assert page.startswith(HEADER)
    assert page.index("## Version 2") < page.index("## Version 1 (stable)")
    assert "`--model gold` uses version 1 (its `stable` label)" in page
    assert "- parent: gold:1" in page and "- steps: 4,600" in page and f"`{'ab' * 32}`" in page
    v2 = page[page.index("## Version 2"):page.index("## Version 1")]
    assert "Measured on 4 pairs" in v2
    # baselines, then the model, then the target; a column empty in every row is left out
    assert "| | PSNR (dB) | SSIM |\n" in v2
    rows = [line.split(" | ")[0] for line in v2.splitlines() if line.startswith("| ") and "(dB)" not in line]
    assert rows[:4] == ["| nearest ×2", "| input (Lanczos ×2)", "| this version's output", "| target (HR)"]
    assert "| this version's output | 24.85 | 0.638 |" in v2 and "| target (HR) | — | — |" in v2
    # the by-width and by-sampling tables, with their counts
    assert "| | < 7.1 nm | 7.1–14.2 nm | ≥ 14.2 nm |" in v2
    assert "| this version's output | 66.5% (612/921) | 33.1% (889/2,687) | 10.5% (567/5,399) |" in v2
    assert "an input sample in the gap | no input sample in the gap |" in v2
    assert "| this version's output | 11.6% (700/6,030) | 46.0% (1,369/2,977) |" in v2
    # fields the renderer does not know are shown as the card has them, not dropped
    assert '"calibration_note"' in v2
    v1 = page[page.index("## Version 1"):]
    assert "No evaluation was recorded" in v1 and "trained from scratch" in v1


def test_read_evaluation_keeps_the_gap_tables_of_results_json(tmp_path):
    results = {"pairs": 4, "aggregate": EVALUATION["table"], "gaps": {"output": {"n_gaps": 9007}},
               "undetected_by_width": BY_WIDTH, "undetected_by_input_sampling": None,
               "per_pair": [{"name": "pair-000"}]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    assert read_evaluation(path) == {"pairs": 4, "table": EVALUATION["table"], "undetected_by_width": BY_WIDTH}
    hr_only = {"mode": "hr-only", "images": 6, "aggregate": {"lanczos": {"psnr_db": 32.57}},
               "per_image": [{"name": "w1_15"}]}
    path.write_text(json.dumps(hr_only))
    assert read_evaluation(path) == {"pairs": None, "table": {"lanczos": {"psnr_db": 32.57}}, "images": 6}


def test_zoo_docs_writes_checks_and_removes_pages_of_removed_models(cli, card_zoo, tmp_path):
    out = tmp_path / "docs" / "models"
    assert cli("zoo", "docs", "--zoo", card_zoo.root, "--check").exit_code == 2  # nothing written yet
    result = cli("zoo", "docs", "--zoo", card_zoo.root)
    assert result.exit_code == 0, result.output
    assert (out / "gold.md").read_text() == model_doc_markdown(card_zoo, "gold")
    assert cli("zoo", "docs", "--zoo", card_zoo.root, "--check").exit_code == 0
    card_zoo.set_label("gold", 2, "stable")  # a moved label changes the page
    result = cli("zoo", "docs", "--zoo", card_zoo.root, "--check")
    assert result.exit_code == 2 and "gold.md" in result.output and "semzoo zoo docs" in result.output
    (out / "gone.md").write_text(HEADER + "# gone\n")  # a generated page of a removed model
    (out / "index.md").write_text("# hand-written\n")
    assert cli("zoo", "docs", "--zoo", card_zoo.root).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["gold.md", "index.md"]
    assert "uses version 2" in (out / "gold.md").read_text()


def test_zoo_docs_refuses_to_replace_a_page_it_did_not_write(cli, card_zoo, tmp_path):
    out = tmp_path / "pages"
    out.mkdir()
    (out / "gold.md").write_text("# mine\n")
    result = cli("zoo", "docs", "--zoo", card_zoo.root, "--out", out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "gold.md").read_text() == "# mine\n"
    assert cli("zoo", "docs", "--zoo", card_zoo.root, "--out", out, "--overwrite").exit_code == 0
    assert (out / "gold.md").read_text().startswith(HEADER)


def test_rendering_the_pages_does_not_import_tensorflow():
    code = ("import sys; from zoo.registry.model_doc import model_docs; from zoo.registry.store import Zoo; "
            f"model_docs(Zoo({str(REPO / 'models')!r})); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
