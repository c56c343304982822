"""truth.json's one reader (zoo.sim.truth): a damaged file is a one-line UserError naming it."""

from __future__ import annotations

import json

import pytest

from zoo.errors import UserError
from zoo.sim.truth import read_truth, with_file_probe


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not readable JSON"),
    ("[1, 2]", "has no 'pairs' object"),
    ('{"sample": "gold-on-carbon"}', "has no 'pairs' object"),
    ('{"pairs": {"a": 3}}', "pair 'a' is not an object"),
])
def test_a_damaged_truth_file_is_a_user_error_naming_it(tmp_path, text, message):
    path = tmp_path / "truth.json"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        read_truth(path)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="^--truth "):
        read_truth(path, label=f"--truth {path}")


def test_a_missing_truth_file_and_a_good_one(tmp_path):
    path = tmp_path / "truth.json"
    with pytest.raises(UserError, match="does not exist"):
        read_truth(path)
    doc = {"probe_fwhm_nm": 3.0, "pairs": {"a": {"gaps": []}, "b": {"probe_fwhm_nm": 2.0}}}
    path.write_text(json.dumps(doc))
    assert read_truth(path) == doc  # as written: the file's probe is not copied into the pairs
    pairs = with_file_probe(read_truth(path))["pairs"]
    assert pairs["a"]["probe_fwhm_nm"] == 3.0 and pairs["b"]["probe_fwhm_nm"] == 2.0
