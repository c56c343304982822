"""SavedModels are programs (TensorFlow's SECURITY.md): the server runs only what the zoo holds.

- every version's files are checked against its card's sha256s before loading (a modified
  file is refused: tests/server/test_lifecycle.py covers truncated weights and a broken
  saved_model.pb; here, a swapped saved_model.pb);
- a version that is, or contains, a symbolic link is refused (publishing copies files, so a
  link can only be added later, and may lead outside the zoo), with the reason in the log and
  in `semzoo zoo list`;
- a HandleReloadConfigRequest (any client can send one) may not point the server at base
  paths outside its zoo;
- model names from the wire are names, never paths.
"""

from __future__ import annotations

import json
import os
import shutil

import grpc
import numpy as np
import pytest

from tests.server.test_server import predict_request

IMAGE = np.ones((1, 4, 4, 1), np.float32)


def _model_stub(target):
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(target)
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)


def _zoo_list(cli, root) -> dict:
    result = cli("zoo", "list", "--zoo", root, "--json")
    text = result.output
    (row,) = json.loads(text[: text.rindex("]") + 1])
    return result.exit_code, row["problems"]


def test_swapped_saved_model_is_refused_before_loading(cli, zoo_copy, caplog):
    from zoo.server.server import EmbeddedServer

    # v2's graph replaced by v1's: a valid SavedModel, but not the program the card vouches for
    (zoo_copy / "tiny" / "2" / "saved_model.pb").write_bytes((zoo_copy / "tiny" / "1" / "saved_model.pb").read_bytes()
                                                            + b"\x00")
    with caplog.at_level("ERROR", logger="zoo.server"), EmbeddedServer(zoo_copy, port=0, poll_seconds=0) as server:
        assert server.manager.available() == {"tiny": [1]}
        (_, status), = server.manager.status("tiny", 2)
        assert status.error_code == 15 and "saved_model.pb is modified" in status.error_message
    assert "version 2 of tiny failed verification: saved_model.pb is modified" in caplog.text
    code, problems = _zoo_list(cli, zoo_copy)
    assert code == 2 and problems["2"] == ["saved_model.pb is modified (sha256 differs from the card)"]


@pytest.mark.parametrize("where", ["version", "file"])
def test_symbolic_links_are_refused_with_the_reason(cli, zoo_copy, tmp_path, caplog, where):
    from zoo.server.server import EmbeddedServer

    outside = tmp_path / "outside"
    shutil.copytree(zoo_copy / "tiny" / "1", outside)  # byte-identical: the sha256s would match
    if where == "version":
        os.symlink(outside, zoo_copy / "tiny" / "3")
        reason = "the version directory is a symbolic link to"
    else:
        shutil.copytree(zoo_copy / "tiny" / "1", zoo_copy / "tiny" / "3")
        pb = zoo_copy / "tiny" / "3" / "saved_model.pb"
        pb.unlink()
        os.symlink(outside / "saved_model.pb", pb)
        reason = "saved_model.pb is a symbolic link to"
    with caplog.at_level("ERROR", logger="zoo.server"), EmbeddedServer(zoo_copy, port=0, poll_seconds=0) as server:
        assert 3 not in server.manager.available()["tiny"]
        (_, status), = server.manager.status("tiny", 3)
        assert reason in status.error_message
        channel, predict, _ = _model_stub(server.target)
        # the latest is served by v2, the newest version that verifies (TF Serving's
        # availability-preserving rule; the labelled v1 is not "the latest")
        assert predict.Predict(predict_request(image=IMAGE), timeout=30).model_spec.version.value == 2
        channel.close()
    assert reason in caplog.text and "still serving" in caplog.text
    code, problems = _zoo_list(cli, zoo_copy)
    assert code == 2 and reason in problems["3"][0] and str(outside) in problems["3"][0]


def test_reload_request_cannot_point_outside_the_zoo(zoo_copy, tmp_path):
    from tensorflow_serving.apis import model_management_pb2

    from zoo.server.server import EmbeddedServer

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(zoo_copy / "tiny", elsewhere / "tiny")  # a valid, verified copy -- but not the zoo
    with EmbeddedServer(zoo_copy, port=0, poll_seconds=0) as server:
        channel, predict, model = _model_stub(server.target)
        for base in (elsewhere / "tiny", zoo_copy / ".." / "elsewhere" / "tiny"):
            request = model_management_pb2.ReloadConfigRequest()
            request.config.model_config_list.config.add(name="evil", base_path=str(base), model_platform="tensorflow")
            with pytest.raises(grpc.RpcError) as info:
                model.HandleReloadConfigRequest(request, timeout=60)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "is outside" in info.value.details() and "loads models only from there" in info.value.details()
        # nothing changed: the zoo's model still serves, the other one was never loaded
        assert server.manager.available() == {"tiny": [1, 2]}
        assert predict.Predict(predict_request(image=IMAGE), timeout=30).model_spec.version.value == 2
        channel.close()


def test_reload_request_of_a_config_file_server_stays_beside_its_models(zoo_copy, tmp_path):
    from tensorflow_serving.apis import model_management_pb2

    from zoo.server.server import EmbeddedServer

    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "tiny" base_path: "%s" model_platform: "tensorflow" } }'
        % (zoo_copy / "tiny")
    )
    with EmbeddedServer(model_config=config, port=0, poll_seconds=0) as server:
        assert server.allowed_roots == [zoo_copy.resolve()]
        request = model_management_pb2.ReloadConfigRequest()
        request.config.model_config_list.config.add(name="etc", base_path="/etc", model_platform="tensorflow")
        with pytest.raises(Exception, match="is outside"):
            server.reload_config(request.config)


def test_model_names_from_the_wire_are_never_paths(zoo_copy):
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(zoo_copy, port=0, poll_seconds=0) as server:
        channel, predict, _ = _model_stub(server.target)
        for name in ("../tiny", "tiny/1", "/tmp", "tiny/../tiny", "tiny/2/saved_model.pb"):
            with pytest.raises(grpc.RpcError) as info:
                predict.Predict(predict_request(name, image=IMAGE), timeout=30)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND, name
        channel.close()
