"""The zoo on disk: atomic publish, sha256 verification, names, labels, resolution."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo.errors import UserError
from zoo.registry.card import CARD_ASSET_PATH, CARD_PATH, read_card
from zoo.registry.store import Zoo, file_hashes

REPO = Path(__file__).resolve().parents[2]


def copy_files(source: Path, out: Path) -> None:
    """Copy file contents only (no permission bits), like an exporter writing fresh files."""
    for path in source.rglob("*"):
        if path.is_file():
            (out / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / path.relative_to(source))


def leftovers(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if p.name.startswith(".tmp-"))


# ---- publishing ----------------------------------------------------------------------------
def test_publish_numbers_versions_and_hashes_every_file(tmp_path, tiny_export):
    zoo = Zoo(tmp_path / "models")
    assert zoo.models() == []
    assert zoo.publish_version("gold-on-carbon", tiny_export) == 1
    assert zoo.publish_version("gold-on-carbon", tiny_export, label="canary") == 2
    assert zoo.models() == ["gold-on-carbon"]
    assert zoo.versions("gold-on-carbon") == [1, 2]
    assert zoo.labels("gold-on-carbon") == {"canary": 2}
    vdir = zoo.version_dir("gold-on-carbon", 2)
    card = read_card(vdir)
    assert card["name"] == "gold-on-carbon"  # the card follows the name it was published under
    assert set(card["files"]) == set(file_hashes(vdir))
    assert {"saved_model.pb", "variables/variables.index",
            "assets.extra/tf_serving_warmup_requests"} <= set(card["files"])
    assert CARD_PATH not in card["files"] and CARD_ASSET_PATH not in card["files"]
    assert (vdir / CARD_PATH).read_bytes() == (vdir / CARD_ASSET_PATH).read_bytes()
    assert zoo.verify("gold-on-carbon", 1) == [] and zoo.verify("gold-on-carbon", 2) == []
    assert leftovers(zoo.root / "gold-on-carbon") == []


def test_a_version_copied_under_a_new_number_is_valid(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    shutil.copytree(tiny_zoo / "tiny" / "2", tiny_zoo / "tiny" / "7")
    assert zoo.versions("tiny") == [1, 2, 7]
    assert zoo.verify("tiny", 7) == []
    assert zoo.publish_version("tiny", zoo.version_dir("tiny", 7)) == 8  # republish a copy


def test_crash_inside_build_leaves_no_version_and_no_temp_dir(tiny_zoo):
    zoo = Zoo(tiny_zoo)

    def build(out: Path) -> None:
        shutil.copytree(tiny_zoo / "tiny" / "1", out, dirs_exist_ok=True)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        zoo.publish_version("tiny", build)
    assert zoo.versions("tiny") == [1, 2]
    assert leftovers(tiny_zoo / "tiny") == []


def test_build_without_card_or_with_bad_signatures_is_refused(tiny_zoo, tmp_path):
    zoo = Zoo(tiny_zoo)
    with pytest.raises(UserError, match="no model card"):
        zoo.publish_version("tiny", lambda out: (out / "saved_model.pb").write_bytes(b""))
    with pytest.raises(UserError, match="not a SavedModel"):
        zoo.publish_version("tiny", tmp_path)

    broken = tmp_path / "broken"
    shutil.copytree(tiny_zoo / "tiny" / "1", broken)
    (broken / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="refusing to publish tiny: saved_model.pb does not parse"):
        zoo.publish_version("tiny", broken)
    assert zoo.versions("tiny") == [1, 2]
    assert leftovers(tiny_zoo / "tiny") == []


def test_killed_publish_is_ignored_then_cleaned(tiny_zoo):
    """A process killed mid-build (os._exit: no cleanup runs) leaves only a hidden temp dir."""
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from zoo.registry.store import Zoo

        def build(out):
            (out / "saved_model.pb").write_bytes(b"half written")
            os._exit(9)

        Zoo({str(tiny_zoo)!r}).publish_version("tiny", build)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    zoo = Zoo(tiny_zoo)
    stale = leftovers(tiny_zoo / "tiny")
    assert len(stale) == 1
    assert zoo.versions("tiny") == [1, 2]  # TF Serving and the zoo both ignore it
    assert zoo.resolve("tiny:latest") == ("tiny", 2)

    mine = tiny_zoo / "tiny" / f".tmp-{os.uname().nodename.replace('-', '_')}-{os.getpid()}-x"
    mine.mkdir()  # a publish in progress in a live process must survive the cleaning
    assert zoo.publish_version("tiny", tiny_zoo / "tiny" / "1") == 3
    assert leftovers(tiny_zoo / "tiny") == [mine.name]


def test_non_version_entries_are_ignored_when_numbering(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    (tiny_zoo / "tiny" / "not-a-version").mkdir()
    (tiny_zoo / "tiny" / "007").mkdir()  # non-canonical: ignored, as a different directory
    (tiny_zoo / "tiny" / "README").write_text("x")
    assert zoo.versions("tiny") == [1, 2]
    assert zoo.publish_version("tiny", tiny_zoo / "tiny" / "2") == 3


# ---- verification --------------------------------------------------------------------------
def test_verify_catches_modified_missing_and_extra_files(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    vdir = tiny_zoo / "tiny" / "2"
    data = next((vdir / "variables").glob("variables.data-*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    (vdir / "assets.extra" / "tf_serving_warmup_requests").unlink()
    (vdir / "assets.extra" / "notes.txt").write_text("hello")
    problems = zoo.verify("tiny", 2)
    assert f"variables/{data.name} is modified (sha256 differs from the card)" in problems
    assert "assets.extra/tf_serving_warmup_requests is missing" in problems
    assert "assets.extra/notes.txt is not listed in the card" in problems
    assert zoo.verify("tiny", 1) == []


def test_verify_reports_card_problems(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    (tiny_zoo / "tiny" / "1" / CARD_ASSET_PATH).write_text("{}")
    assert zoo.verify("tiny", 1) == [f"{CARD_ASSET_PATH} differs from {CARD_PATH}"]
    (tiny_zoo / "tiny" / "2" / CARD_PATH).unlink()
    assert zoo.verify("tiny", 2) == [f"{CARD_PATH} is missing"]
    (tiny_zoo / "tiny" / "2" / CARD_PATH).write_text('{"name": "tiny"}')
    assert zoo.verify("tiny", 2) == ["invalid model card: schema is missing (in assets.extra/card.json)"]


# ---- names, labels, resolution -------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../x", "a/b", "", "..", "Tiny", "/abs", "-rf"])
def test_names_are_validated_everywhere(tiny_zoo, tiny_export, bad):
    zoo = Zoo(tiny_zoo)
    with pytest.raises(UserError):
        zoo.publish_version(bad, tiny_export)
    with pytest.raises(UserError):
        zoo.versions(bad)
    with pytest.raises(UserError):
        zoo.resolve(bad)
    assert sorted(p.name for p in tiny_zoo.parent.iterdir()) == ["models"]  # nothing escaped


def test_labels_are_validated_and_point_at_existing_versions(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    assert zoo.labels("tiny") == {"stable": 1}
    zoo.set_label("tiny", 2, "canary")
    zoo.set_label("tiny", 2, "stable")
    assert zoo.labels("tiny") == {"canary": 2, "stable": 2}
    assert json.loads((tiny_zoo / "tiny" / "labels.json").read_text()) == {"canary": 2, "stable": 2}
    with pytest.raises(UserError, match="has no version 9"):
        zoo.set_label("tiny", 9, "stable")
    for bad in ("3", "latest", "Stable", "a/b", ""):
        with pytest.raises(UserError, match="invalid label"):
            zoo.set_label("tiny", 1, bad)
    zoo.remove_label("tiny", "canary")
    assert zoo.labels("tiny") == {"stable": 2}
    with pytest.raises(UserError, match="no label 'canary'"):
        zoo.remove_label("tiny", "canary")
    (tiny_zoo / "tiny" / "labels.json").write_text("{broken")
    with pytest.raises(UserError, match="labels.json is not valid JSON"):
        zoo.labels("tiny")


def test_resolve_bare_name_prefers_stable_then_latest(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    assert zoo.resolve("tiny") == ("tiny", 1)  # stable -> 1 although 2 is newer
    assert zoo.resolve("tiny:latest") == ("tiny", 2)
    assert zoo.resolve("tiny:2") == ("tiny", 2)
    assert zoo.resolve("tiny@stable") == ("tiny", 1)
    assert zoo.card("tiny")["name"] == "tiny"
    (tiny_zoo / "tiny" / "labels.json").unlink()
    assert zoo.resolve("tiny") == ("tiny", 2)  # no stable label: the latest


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tiny:3", "has no version 3"),
        ("tiny:x", "bad version 'x'"),
        ("tiny:-1", "bad version"),
        ("tiny@canary", "no label 'canary' \\(labels: stable\\)"),
        ("nope", "no model named 'nope' .*models: tiny"),
        ("nope@stable", "no model named 'nope'"),
        ("", "empty model reference"),
    ],
)
def test_resolve_errors_are_clear(tiny_zoo, spec, message):
    with pytest.raises(UserError, match=message):
        Zoo(tiny_zoo).resolve(spec)


def test_label_pointing_at_a_deleted_version_is_reported(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    shutil.rmtree(tiny_zoo / "tiny" / "1")
    with pytest.raises(UserError, match="has no version 1"):
        zoo.resolve("tiny")


def test_make_tiny_zoo_helper_for_other_test_suites(tmp_path):
    from tests.zoo_fixtures import make_tiny_zoo

    root = make_tiny_zoo(tmp_path / "models", name="helper", versions=2, labels={"stable": 1, "canary": 2})
    zoo = Zoo(root)
    assert zoo.versions("helper") == [1, 2]
    assert zoo.labels("helper") == {"canary": 2, "stable": 1}
    assert all(zoo.verify("helper", v) == [] for v in (1, 2))


def test_concurrent_publishes_get_distinct_numbers(tiny_zoo):
    """Version numbering and the rename happen under the model's lock."""
    from concurrent.futures import ThreadPoolExecutor

    zoo = Zoo(tiny_zoo)
    source = tiny_zoo / "tiny" / "1"
    with ThreadPoolExecutor(4) as pool:
        numbers = list(pool.map(lambda _: zoo.publish_version("tiny", source), range(4)))
    assert sorted(numbers) == [3, 4, 5, 6]
    assert zoo.versions("tiny") == [1, 2, 3, 4, 5, 6]
    assert all(zoo.verify("tiny", v) == [] for v in numbers)
    assert leftovers(tiny_zoo / "tiny") == []


def test_published_files_are_readable_by_other_users(tmp_path, tiny_export):
    """mkdtemp/mkstemp make 0700/0600: a TF Serving running as another user could not read."""
    zoo = Zoo(tmp_path / "models")
    old = os.umask(0o022)
    try:
        zoo.publish_version("m", lambda out: copy_files(tiny_export, out), label="stable")
    finally:
        os.umask(old)
    assert (zoo.version_dir("m", 1).stat().st_mode & 0o777) == 0o755
    assert ((tmp_path / "models" / "m" / "labels.json").stat().st_mode & 0o777) == 0o644


def test_make_tiny_zoo_standin_and_tile_override(tmp_path):
    from tests.zoo_fixtures import make_tiny_zoo

    zoo = Zoo(make_tiny_zoo(tmp_path / "a", generator="standin"))
    assert zoo.card("tiny")["tile"] == {"size": 32, "overlap": 8, "divisor": 8}
    tile = {"size": 48, "overlap": 16, "divisor": 8}
    zoo = Zoo(make_tiny_zoo(tmp_path / "b", generator="standin", tile=tile))
    assert zoo.card("tiny")["tile"] == tile and zoo.verify("tiny", 1) == []
