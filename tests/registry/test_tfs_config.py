"""models.config from the zoo, parsed back with TF Serving's ModelServerConfig; other configs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from zoo.errors import UserError
from zoo.registry.store import Zoo
from zoo.registry.tfs_config import (
    HEADER,
    models_config_text,
    parse_batching_config,
    parse_models_config,
    parse_monitoring_config,
    write_models_config,
)

REPO = Path(__file__).resolve().parents[2]


def test_models_config_round_trip_through_tf_servings_proto(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    shutil.copytree(tiny_zoo / "tiny", tiny_zoo / "hydrogel")
    zoo.publish_version("tiny", tiny_zoo / "tiny" / "2")  # tiny: 1 2 3, stable -> 1
    zoo.set_label("tiny", 2, "canary")
    text = models_config_text(zoo)
    assert text.startswith(HEADER)
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)  # TF Serving's own proto, as --model_config_file does
    entries = {c.name: c for c in config.model_config_list.config}
    assert sorted(entries) == ["hydrogel", "tiny"]
    tiny = entries["tiny"]
    assert tiny.base_path == "/models/tiny"
    assert tiny.model_platform == "tensorflow"
    assert list(tiny.model_version_policy.specific.versions) == [1, 2, 3]  # labelled + latest
    assert dict(tiny.version_labels) == {"stable": 1, "canary": 2}
    hydrogel = entries["hydrogel"]
    assert list(hydrogel.model_version_policy.specific.versions) == [1, 2]
    assert dict(hydrogel.version_labels) == {"stable": 1}
    assert models_config_text(zoo) == text  # deterministic


def test_unlabelled_model_serves_its_latest_only_and_base_path_prefix(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    (tiny_zoo / "tiny" / "labels.json").unlink()
    config = parse_models_config(models_config_text(zoo, base_path="/srv/zoo/"))
    (entry,) = config.model_config_list.config
    assert entry.base_path == "/srv/zoo/tiny"
    assert list(entry.model_version_policy.specific.versions) == [2]
    assert not entry.version_labels


def test_empty_zoo_gives_an_empty_but_valid_list(tmp_path):
    text = models_config_text(Zoo(tmp_path / "none"))
    config = parse_models_config(text)
    assert config.HasField("model_config_list") and not config.model_config_list.config


def test_dangling_label_is_refused(tiny_zoo):
    shutil.rmtree(tiny_zoo / "tiny" / "1")
    with pytest.raises(UserError, match="label\\(s\\) stable point at missing versions"):
        models_config_text(Zoo(tiny_zoo))


def test_write_is_atomic_and_refuses_a_directory(tiny_zoo, tmp_path):
    out = write_models_config(Zoo(tiny_zoo), tmp_path / "serving" / "models.config")
    assert parse_models_config(out.read_text()).model_config_list.config[0].name == "tiny"
    assert [p.name for p in out.parent.iterdir()] == ["models.config"]  # no temp file left
    with pytest.raises(UserError, match="is a directory"):
        write_models_config(Zoo(tiny_zoo), tmp_path)


def test_parse_models_config_rejects_bad_text_and_unservable_labels():
    with pytest.raises(UserError, match="invalid models.config"):
        parse_models_config("model_config_list { config { nam: 'x' } }")
    bad = """model_config_list { config { name: "x" base_path: "/models/x" model_platform: "tensorflow"
      model_version_policy { specific { versions: 2 } } version_labels { key: "stable" value: 1 } } }"""
    with pytest.raises(UserError, match="outside its version policy"):
        parse_models_config(bad)


def test_repository_models_config_is_in_sync_with_models():
    """serving/models.config must be exactly what `semzoo zoo config` makes from models/."""
    committed = (REPO / "serving" / "models.config").read_text()
    assert committed == models_config_text(Zoo(REPO / "models")), (
        "serving/models.config is stale: run `semzoo zoo config`"
    )


def test_repository_batching_and_monitoring_configs_parse():
    batching = parse_batching_config((REPO / "serving" / "batching.config").read_text())
    assert batching.max_batch_size.value == 8
    assert list(batching.allowed_batch_sizes) == [1, 2, 4, 8]
    assert batching.num_batch_threads.value >= 1 and batching.batch_timeout_micros.value > 0
    monitoring = parse_monitoring_config((REPO / "serving" / "monitoring.config").read_text())
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 2", "must increase"),
        ("max_batch_size { value: 8 }\nallowed_batch_sizes: 1\nallowed_batch_sizes: 4", "must equal max_batch_size"),
        ("num_batch_threads { value: 0 }", "num_batch_threads"),
        ("max_batch_size: 8", "invalid batching.config"),  # a wrapper message, not a scalar
        ("batch_size { value: 8 }", "invalid batching.config"),
    ],
)
def test_bad_batching_configs_are_refused(text, message):
    with pytest.raises(UserError, match=message):
        parse_batching_config(text)


def test_bad_monitoring_config_is_refused():
    with pytest.raises(UserError, match="invalid monitoring.config"):
        parse_monitoring_config("prometheus { enable: true }")
