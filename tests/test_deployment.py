"""The Docker image, checked without Docker: everything the Dockerfile copies and every config
tensorflow_model_server reads exists and parses with TF Serving's protos."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            lines.append(current)
            current = ""
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1]) for l in lines]


def server_flags() -> dict[str, str]:
    (entry,) = [args for op, args in dockerfile_instructions() if op == "ENTRYPOINT"]
    argv = json.loads(entry)
    assert argv[0] == "tensorflow_model_server"
    flags = {}
    for arg in argv[1:]:
        match = re.fullmatch(r"--([a-z_]+)(?:=(.*))?", arg)
        assert match, f"not a --flag=value argument: {arg}"
        flags[match.group(1)] = match.group(2) if match.group(2) is not None else "true"
    return flags


def in_image(path: str) -> Path:
    """Where a path inside the image comes from in the repository (per the COPY lines)."""
    copies = {}
    for op, args in dockerfile_instructions():
        if op == "COPY":
            src, dst = shlex.split(args)
            copies[dst.rstrip("/")] = REPO / src
    for dst, src in copies.items():
        if path == dst or path.startswith(dst + "/"):
            return src / path[len(dst) + 1 :]
    raise AssertionError(f"{path} is not copied into the image")


def test_base_image_is_official_tf_serving_with_a_pinned_version():
    (base,) = [args for op, args in dockerfile_instructions() if op == "FROM"]
    image, _, tag = base.partition(":")
    assert image == "tensorflow/serving"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a release tag, not {tag!r}"


def test_copied_sources_exist_and_ports_are_exposed():
    for op, args in dockerfile_instructions():
        if op == "COPY":
            src, dst = shlex.split(args)
            assert (REPO / src).is_dir(), f"COPY source {src} missing"
    (expose,) = [args for op, args in dockerfile_instructions() if op == "EXPOSE"]
    assert set(expose.split()) == {"8500", "8501"}
    flags = server_flags()
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"


def test_server_flags_cover_the_deployment_contract():
    flags = server_flags()
    for flag in ("enable_batching", "enable_grpc_healthcheck_service"):
        assert flags[flag] == "true", flag
    # it would put the card's strings in tensor_content, which tf.make_ndarray cannot read
    # (tests/server/test_server.py serves with the image's encoding and decodes every output)
    assert flags.get("enable_serialization_as_tensor_content", "false") == "false"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0


def test_every_config_the_server_reads_exists_and_parses():
    from zoo.registry.tfs_config import (
        parse_batching_config,
        parse_models_config,
        parse_monitoring_config,
    )

    flags = server_flags()
    parsers = {
        "model_config_file": parse_models_config,
        "batching_parameters_file": parse_batching_config,
        "monitoring_config_file": parse_monitoring_config,
    }
    for flag, parse in parsers.items():
        source = in_image(flags[flag])
        assert source.is_file(), f"--{flag}={flags[flag]} comes from {source}, which is missing"
        parse(source.read_text())


def test_models_config_base_paths_point_into_the_copied_zoo():
    from zoo.registry.tfs_config import parse_models_config

    config = parse_models_config(in_image(server_flags()["model_config_file"]).read_text())
    for entry in config.model_config_list.config:
        model_dir = in_image(entry.base_path)
        assert model_dir.is_dir(), f"{entry.name}: {entry.base_path} -> {model_dir} missing"
        for version in entry.model_version_policy.specific.versions:
            assert (model_dir / str(version) / "saved_model.pb").is_file()
            assert (model_dir / str(version) / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_dockerignore_keeps_the_build_context_to_models_and_serving():
    lines = [l for l in (REPO / ".dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "*" and "!models/" in lines and "!serving/" in lines

