"""`semzoo zoo list/show/label/config` on a tiny zoo made in the test."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.zoo_fixtures import make_tiny_zoo
from zoo.registry.store import Zoo

EVALUATION = {"output": {"psnr": 27.25, "ssim": 0.812}, "lanczos": {"psnr": 25.0}}


@pytest.fixture(scope="module")
def _master(tmp_path_factory):
    root = make_tiny_zoo(tmp_path_factory.mktemp("cli-zoo") / "models", name="gold-on-carbon",
                         versions=2, labels={"stable": 1}, evaluation=EVALUATION)
    return root


@pytest.fixture
def zoo_root(tmp_path, _master):
    root = tmp_path / "models"
    shutil.copytree(_master, root)
    return root


def test_list_table(cli, zoo_root):
    result = cli("zoo", "list", "--zoo", zoo_root)
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in ("gold-on-carbon", "1 2", "stable=1", "14.2 -> 7.1", "psnr 27.25", "ok"):
        assert expected in out, expected


def test_list_json_and_env_default(cli, zoo_root, monkeypatch):
    monkeypatch.setenv("SEMZOO_ZOO", str(zoo_root))
    result = cli("zoo", "list", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["model"] == "gold-on-carbon" and row["versions"] == [1, 2]
    assert row["labels"] == {"stable": 1} and row["default_version"] == 1
    assert row["input_pixel_size_nm"] == 14.2 and row["output_pixel_size_nm"] == pytest.approx(7.1)
    assert row["key_metrics"] == {"psnr": 27.25, "ssim": 0.812}
    assert row["problems"] == {}


def test_list_reports_a_corrupt_version_and_exits_2(cli, zoo_root):
    (zoo_root / "gold-on-carbon" / "2" / "saved_model.pb").write_bytes(b"tampered")
    result = cli("zoo", "list", "--zoo", zoo_root)
    assert result.exit_code == 2
    assert "v2: saved_model.pb is modified" in result.output
    assert "error: the zoo has problems in gold-on-carbon" in result.output
    assert cli("zoo", "list", "--zoo", zoo_root, "--no-verify").exit_code == 0


def test_list_empty_zoo(cli, tmp_path):
    result = cli("zoo", "list", "--zoo", tmp_path / "empty")
    assert result.exit_code == 0 and "no models yet" in result.output
    assert not (tmp_path / "empty").exists()  # looking never creates anything


def test_show_pretty_and_json(cli, zoo_root):
    result = cli("zoo", "show", "gold-on-carbon", "--zoo", zoo_root)
    assert result.exit_code == 0, result.output
    for expected in ("gold-on-carbon:1 (stable)", "14.2 nm -> 7.1 nm (x2)", "per-image mean/std", "27.25"):
        assert expected in result.output, expected
    result = cli("zoo", "show", "gold-on-carbon:2", "--zoo", zoo_root, "--json")
    shown = json.loads(result.output)
    assert shown["version"] == 2
    assert shown["card"] == Zoo(zoo_root).card("gold-on-carbon", 2)
    assert json.loads(cli("zoo", "show", "gold-on-carbon@stable", "--zoo", zoo_root, "--json").output)["version"] == 1


@pytest.mark.parametrize(
    "spec, message",
    [("gold-on-carbon:9", "has no version 9"), ("nope", "no model named 'nope'"),
     ("gold-on-carbon@canary", "no label 'canary'"), ("../etc", "invalid model name")],
)
def test_show_errors_exit_2(cli, zoo_root, spec, message):
    result = cli("zoo", "show", spec, "--zoo", zoo_root)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_label_moves_and_refuses_unknown_versions(cli, zoo_root):
    result = cli("zoo", "label", "gold-on-carbon", "2", "stable", "--zoo", zoo_root)
    assert result.exit_code == 0, result.output
    assert "gold-on-carbon@stable -> 2 (was 1)" in result.output
    assert Zoo(zoo_root).labels("gold-on-carbon") == {"stable": 2}
    result = cli("zoo", "label", "gold-on-carbon", "5", "canary", "--zoo", zoo_root)
    assert result.exit_code == 2 and "has no version 5" in result.output
    result = cli("zoo", "label", "gold-on-carbon", "1", "Bad Label", "--zoo", zoo_root)
    assert result.exit_code == 2 and "invalid label" in result.output
    assert Zoo(zoo_root).labels("gold-on-carbon") == {"stable": 2}


def test_config_writes_beside_the_zoo_and_regenerates(cli, zoo_root):
    from zoo.registry.tfs_config import models_config_text, parse_models_config

    result = cli("zoo", "config", "--zoo", zoo_root)
    assert result.exit_code == 0, result.output
    target = zoo_root.parent / "serving" / "models.config"
    config = parse_models_config(target.read_text())
    (entry,) = config.model_config_list.config
    assert entry.base_path == "/models/gold-on-carbon"
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    cli("zoo", "label", "gold-on-carbon", "2", "canary", "--zoo", zoo_root)
    assert cli("zoo", "config", "--zoo", zoo_root).exit_code == 0  # its own file: regenerated
    assert target.read_text() == models_config_text(Zoo(zoo_root))
    assert dict(parse_models_config(target.read_text()).model_config_list.config[0].version_labels) == {
        "stable": 1, "canary": 2}


def test_config_stdout_base_path_and_foreign_file(cli, zoo_root, tmp_path):
    result = cli("zoo", "config", "--zoo", zoo_root, "--out", "-", "--base-path", "/data/zoo")
    assert result.exit_code == 0
    assert 'base_path: "/data/zoo/gold-on-carbon"' in result.output
    foreign = tmp_path / "mine.config"
    foreign.write_text("# hand-written\n")
    result = cli("zoo", "config", "--zoo", zoo_root, "--out", foreign)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert foreign.read_text() == "# hand-written\n"
    assert cli("zoo", "config", "--zoo", zoo_root, "--out", foreign, "--overwrite").exit_code == 0
    assert "gold-on-carbon" in foreign.read_text()


def test_zoo_group_help_lists_its_commands(cli):
    result = cli("zoo", "--help")
    assert result.exit_code == 0
    for command in ("list", "show", "label", "config"):
        assert command in result.output


def test_zoo_list_and_config_do_not_import_tensorflow(zoo_root):
    """Listing and configuring the zoo is instant: no TensorFlow import (seconds) on the way."""
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from zoo.cli.main import app; "
        f"r1 = CliRunner().invoke(app, ['zoo', 'list', '--zoo', {str(zoo_root)!r}]); "
        f"r2 = CliRunner().invoke(app, ['zoo', 'config', '--zoo', {str(zoo_root)!r}, '-o', '-']); "
        "print(r1.exit_code, r2.exit_code, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0", "False"], out.stderr
