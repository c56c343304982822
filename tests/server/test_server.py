"""The embedded server answers like tensorflow_model_server: payloads, metadata, status codes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.server.tiny_models import nearest2x


def predict_request(name="tiny", *, version=None, label=None, signature=None, image=None, dtype=np.float32):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    if name is not None:
        request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if signature is not None:
        request.model_spec.signature_name = signature
    if image is not None:
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.asarray(image, dtype)))
    return request


def outputs(response):
    import tensorflow as tf

    return tf.make_ndarray(response.outputs["enhanced"])


@pytest.fixture
def batch(rng):
    return rng.standard_normal((2, 5, 7, 1)).astype(np.float32)


@pytest.mark.parametrize(
    "spec, gain, version",
    [({"version": 1}, 1.0, 1), ({"version": 2}, 2.0, 2), ({"label": "stable"}, 1.0, 1), ({}, 2.0, 2)],
    ids=["version-1", "version-2", "label-stable", "latest"],
)
def test_predict_by_version_label_and_latest(stubs, batch, spec, gain, version):
    predict, _ = stubs
    response = predict.Predict(predict_request(image=batch, **spec), timeout=30)
    np.testing.assert_allclose(outputs(response), gain * nearest2x(batch), rtol=1e-6)
    assert response.model_spec.name == "tiny"
    assert response.model_spec.version.value == version
    assert response.model_spec.signature_name == "serving_default"
    # TF Serving's default (and the Docker image's): typed fields, no tensor_content
    tensor = response.outputs["enhanced"]
    assert len(tensor.float_val) == batch.size * 4 and not tensor.tensor_content


def test_float_val_requests_are_accepted(stubs, batch):
    import tensorflow as tf

    predict, _ = stubs
    request = predict_request(version=1)
    proto = request.inputs["image"]
    proto.dtype = tf.float32.as_datatype_enum
    for size in batch.shape:
        proto.tensor_shape.dim.add(size=size)
    proto.float_val.extend(batch.reshape(-1).tolist())
    np.testing.assert_allclose(outputs(predict.Predict(request, timeout=30)), nearest2x(batch), rtol=1e-6)


def card_request(version):
    import tensorflow as tf

    request = predict_request(version=version, signature="card")
    request.inputs["batch"].CopyFrom(tf.make_tensor_proto(np.zeros(1, np.int32)))
    return request


def test_card_signature_returns_the_card_json(stubs, tiny_zoo):
    import json

    from zoo.client.protos import to_ndarray
    from zoo.registry.store import Zoo

    predict, _ = stubs
    tensor = predict.Predict(card_request(2), timeout=30).outputs["card"]
    assert tensor.string_val and not tensor.tensor_content
    assert json.loads(to_ndarray(tensor)[0]) == Zoo(tiny_zoo).card("tiny", 2)


def test_get_model_metadata_matches_tf_serving_shape(stubs, tiny_zoo):
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    predict, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "tiny"
    request.model_spec.version_label = "stable"
    request.metadata_field.append("signature_def")
    response = predict.GetModelMetadata(request, timeout=30)

    # As get_model_metadata_impl.cc: model_spec = name + version (no signature_name);
    # metadata = {"signature_def": Any(SignatureDefMap of every signature)}.
    assert response.model_spec.name == "tiny"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == ""
    assert list(response.metadata) == ["signature_def"]
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    saved = saved_model_pb2.SavedModel.FromString((tiny_zoo / "tiny" / "1" / "saved_model.pb").read_bytes())
    assert dict(signatures.signature_def) == dict(saved.meta_graphs[0].signature_def)
    serving = signatures.signature_def["serving_default"]
    assert set(serving.inputs) == {"image"} and set(serving.outputs) == {"enhanced"}
    assert [d.size for d in serving.inputs["image"].tensor_shape.dim] == [-1, -1, -1, 1]
    assert serving.method_name == "tensorflow/serving/predict"
    assert set(signatures.signature_def) >= {"serving_default", "card"}


def test_get_model_status_lists_available_versions(stubs):
    from tensorflow_serving.apis import get_model_status_pb2

    _, model = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "tiny"
    response = model.GetModelStatus(request, timeout=30)
    states = {s.version: (s.state, s.status.error_code) for s in response.model_version_status}
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert states == {1: (available, 0), 2: (available, 0)}
    # TF Serving ignores version_label in GetModelStatus and lists every version
    labelled = model.GetModelStatus(_status_request("tiny", label="no-such-label"), timeout=30)
    assert [s.version for s in labelled.model_version_status] == [1, 2]


def _status_request(name, version=None, label=None):
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def _metadata_request(name, fields=("signature_def",)):
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = name
    request.metadata_field.extend(fields)
    return request


IMAGE = np.zeros((1, 4, 4, 1), np.float32)

# (call, request factory, code, message fragment) -- codes and texts as TF Serving's sources.
ERRORS = {
    "unknown-model": ("Predict", lambda: predict_request("nope", image=IMAGE),
                      grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    "unknown-version": ("Predict", lambda: predict_request(version=9, image=IMAGE),
                        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(tiny, 9)"),
    "unknown-label": ("Predict", lambda: predict_request(label="beta", image=IMAGE),
                      grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: beta"),
    "no-model-name": ("Predict", lambda: predict_request("", image=IMAGE),
                      grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
    "unknown-signature": ("Predict", lambda: predict_request(signature="classify", image=IMAGE),
                          grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "classify" not found.'),
    "missing-input": ("Predict", lambda: predict_request(),
                      grpc.StatusCode.INVALID_ARGUMENT, "input size does not match signature: 0!=1"),
    "wrong-dtype": ("Predict", lambda: predict_request(image=IMAGE, dtype=np.float64),
                    grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but double is provided"),
    "wrong-rank": ("Predict", lambda: predict_request(image=np.zeros((4, 4, 1), np.float32)),
                   grpc.StatusCode.INVALID_ARGUMENT, "rank 3"),
    "wrong-channels": ("Predict", lambda: predict_request(image=np.zeros((1, 4, 4, 3), np.float32)),
                       grpc.StatusCode.INVALID_ARGUMENT, "expects [?,?,?,1]"),
    "metadata-unknown-model": ("GetModelMetadata", lambda: _metadata_request("nope"),
                               grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    "metadata-no-field": ("GetModelMetadata", lambda: _metadata_request("tiny", ()),
                          grpc.StatusCode.INVALID_ARGUMENT, "must specify at least one metadata_field"),
    "metadata-bad-field": ("GetModelMetadata", lambda: _metadata_request("tiny", ("graph",)),
                           grpc.StatusCode.INVALID_ARGUMENT, "Metadata field graph is not supported"),
    "status-unknown-model": ("GetModelStatus", lambda: _status_request("nope"),
                             grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope"),
    "status-unknown-version": ("GetModelStatus", lambda: _status_request("tiny", version=9),
                               grpc.StatusCode.NOT_FOUND, "Could not find version 9 of model tiny"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_codes_and_messages_are_tf_servings(stubs, case):
    method, make_request, code, fragment = ERRORS[case]
    predict, model = stubs
    stub = model if method == "GetModelStatus" else predict
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(make_request(), timeout=30)
    assert info.value.code() == code
    assert fragment in info.value.details()


def test_unparsable_tensor_content_is_invalid_argument(stubs):
    predict, _ = stubs
    request = predict_request(image=IMAGE)
    request.inputs["image"].tensor_content = b"\x00" * 7  # 16 floats promised, 7 bytes sent
    with pytest.raises(grpc.RpcError) as info:
        predict.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tensor parsing error: image" in info.value.details()


def test_health_service_reports_server_and_models(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == serving
        assert health.Check(health_pb2.HealthCheckRequest(service="tiny"), timeout=10).status == serving
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_messages_larger_than_grpc_default_4mib_pass(server, stubs):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    big = np.ones((1, 1100, 1100, 1), np.float32)  # 4.8 MB in, 19 MB out
    # A channel with gRPC's default 4 MiB receive limit fails on the answer (serving#1382) ...
    predict, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        predict.Predict(predict_request(version=1, image=big), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # ... the server itself takes and sends messages up to --max-message-mb.
    limit = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(server.target, options=limit) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        out = outputs(stub.Predict(predict_request(version=1, image=big), timeout=60))
    assert out.shape == (1, 2200, 2200, 1)


def test_responses_as_tensor_content_when_asked(tiny_zoo, batch):
    """tensor_content=True answers as tensorflow_model_server --enable_serialization_as_tensor_content:
    Tensor::AsProtoTensorContent for every output, strings as TensorFlow's EncodeStringList
    (varint lengths, then the bytes). tf.make_ndarray cannot read those strings (hence no such
    flag in the Dockerfile); semzoo's client can."""
    import json

    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from zoo.client.protos import to_ndarray
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, tensor_content=True) as srv:
        with grpc.insecure_channel(srv.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(predict_request(version=1, image=batch), timeout=30)
            card = stub.Predict(card_request(1), timeout=30).outputs["card"]
    tensor = response.outputs["enhanced"]
    assert tensor.tensor_content and not tensor.float_val
    np.testing.assert_allclose(tf.make_ndarray(tensor), nearest2x(batch), rtol=1e-6)
    assert card.tensor_content and not card.string_val
    assert json.loads(to_ndarray(card)[0])["name"] == "tiny"
    with pytest.raises(ValueError, match="cannot create an OBJECT array from memory buffer"):
        tf.make_ndarray(card)


def signature_inputs(signature, image):
    """One request's inputs for a SignatureDef: ``image`` for float inputs, a batch of 1 otherwise."""
    import tensorflow as tf

    inputs = {}
    for alias, info in signature.inputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype).as_numpy_dtype
        inputs[alias] = image.astype(dtype) if dtype == np.float32 else np.zeros(1, dtype)
    return inputs


def docker_image_answers_with_tensor_content() -> bool:
    from tests.test_deployment import server_flags

    return server_flags().get("enable_serialization_as_tensor_content", "false") == "true"


@pytest.mark.parametrize("encoding", ["serve-defaults", "docker-flags"])
def test_every_signature_reads_with_tf_make_ndarray(tiny_zoo, batch, encoding):
    """Issue 15 part 3: a stock client decodes every output with tf.make_ndarray."""
    import json

    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    from zoo.registry.store import Zoo
    from zoo.server.server import EmbeddedServer

    options = {"tensor_content": docker_image_answers_with_tensor_content()} if encoding == "docker-flags" else {}
    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, **options) as srv:
        with grpc.insecure_channel(srv.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            metadata = stub.GetModelMetadata(_metadata_request("tiny"), timeout=30)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            metadata.metadata["signature_def"].Unpack(signatures)
            decoded = {}
            for key, signature in signatures.signature_def.items():
                if key.startswith("__"):  # __saved_model_init_op: no inputs, not callable over Predict
                    continue
                request = predict_request(signature=key)
                for alias, array in signature_inputs(signature, batch).items():
                    request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
                response = stub.Predict(request, timeout=30)
                assert set(response.outputs) == set(signature.outputs)
                decoded[key] = {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}
    assert set(decoded) == {"serving_default", "card"}
    np.testing.assert_allclose(decoded["serving_default"]["enhanced"], 2.0 * nearest2x(batch), rtol=1e-6)
    assert json.loads(decoded["card"]["card"][0]) == Zoo(tiny_zoo).card("tiny", 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_])
def test_typed_field_outputs_equal_tensorflows_own_encoding(rng, dtype):
    """The fast float_val/double_val path gives the message tf.make_tensor_proto's fields would."""
    import tensorflow as tf

    from zoo.server.grpc_services import to_tensor_proto

    array = (rng.standard_normal((2, 3, 5, 1)) * 100).astype(dtype)
    proto = to_tensor_proto(array, as_content=False)
    assert not proto.tensor_content
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    assert proto.dtype == tf.dtypes.as_dtype(dtype).as_datatype_enum
    if dtype in (np.float32, np.float64):
        field = "float_val" if dtype == np.float32 else "double_val"
        assert list(getattr(proto, field)) == array.reshape(-1).tolist()
        assert to_tensor_proto(np.zeros((0, 4), dtype), as_content=False).tensor_shape.dim[0].size == 0


def test_server_refuses_bad_options(tmp_path, tiny_zoo):
    from zoo.errors import UserError
    from zoo.server.server import EmbeddedServer

    with pytest.raises(UserError, match="does not exist"):
        EmbeddedServer(tmp_path / "missing")
    with pytest.raises(UserError, match="both"):
        EmbeddedServer(tiny_zoo, tls_cert=tmp_path / "cert.pem")
    with pytest.raises(UserError, match="max-message-mb"):
        EmbeddedServer(tiny_zoo, max_message_mb=4096)
