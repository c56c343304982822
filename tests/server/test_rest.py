"""TF Serving's REST API (`semzoo serve --rest-port`): the same answers as gRPC, in TF Serving's JSON."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.server.test_server import card_request, outputs, predict_request
from tests.server.tiny_models import nearest2x


@pytest.fixture(scope="module")
def rest_server(tiny_zoo):
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, rest_port=0) as srv:
        yield srv


def call(url: str, body: bytes | str | dict | None = None, *, method: str | None = None, context=None):
    """(HTTP status, parsed JSON body, Content-Type) of one request."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Content-Type"]


@pytest.fixture
def batch(rng):
    return rng.standard_normal((2, 5, 7, 1)).astype(np.float32)


# -- predict: REST == gRPC ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, spec",
    [("/versions/1", {"version": 1}), ("/versions/2", {"version": 2}), ("/labels/stable", {"label": "stable"}),
     ("", {})],
    ids=["version-1", "version-2", "label-stable", "latest"],
)
def test_predict_row_and_columnar_equal_grpc(rest_server, stubs, batch, path, spec):
    predict, _ = stubs
    expected = outputs(predict.Predict(predict_request(image=batch, **spec), timeout=30))
    url = f"{rest_server.rest_url}/v1/models/tiny{path}:predict"

    status, row, content_type = call(url, {"instances": batch.tolist()})
    assert status == 200 and content_type.startswith("application/json")
    assert list(row) == ["predictions"]
    # float32 outputs written in shortest form still parse back to the very same floats
    np.testing.assert_array_equal(np.array(row["predictions"], np.float32), expected)

    status, columnar, _ = call(url, {"inputs": batch.tolist(), "signature_name": "serving_default"})
    assert status == 200 and list(columnar) == ["outputs"]
    np.testing.assert_array_equal(np.array(columnar["outputs"], np.float32), expected)


def test_instances_as_objects_and_named_inputs_equal_plain_lists(rest_server, batch):
    url = f"{rest_server.rest_url}/v1/models/tiny/versions/2:predict"
    plain = call(url, {"instances": batch.tolist()})[1]["predictions"]
    named = call(url, {"instances": [{"image": item.tolist()} for item in batch]})[1]["predictions"]
    columnar = call(url, {"inputs": {"image": batch.tolist()}})[1]["outputs"]
    assert plain == named == columnar
    np.testing.assert_allclose(np.array(plain, np.float32), 2 * nearest2x(batch), rtol=1e-6)


def test_rest_predict_goes_through_the_grpc_prediction_service(rest_server, batch):
    before = rest_server.prediction.requests
    call(f"{rest_server.rest_url}/v1/models/tiny:predict", {"instances": batch.tolist()})
    assert rest_server.prediction.requests == before + 1


def test_floats_are_written_as_tf_serving_writes_them(rest_server):
    url = f"{rest_server.rest_url}/v1/models/tiny/versions/1:predict"
    request = urllib.request.Request(url, data=json.dumps({"inputs": [[[[0.1]]]]}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
    assert "0.1" in text and "0.100000001" not in text  # as TF Serving's WriteDecimal


# -- the card through REST ---------------------------------------------------------------------
def test_card_signature_through_rest_equals_grpc(rest_server, stubs, tiny_zoo):
    from zoo.client.protos import to_ndarray
    from zoo.registry.store import Zoo

    predict, _ = stubs
    grpc_card = to_ndarray(predict.Predict(card_request(2), timeout=30).outputs["card"])[0].decode()
    url = f"{rest_server.rest_url}/v1/models/tiny/versions/2:predict"
    status, row, _ = call(url, {"signature_name": "card", "instances": [0]})
    assert status == 200
    assert row["predictions"] == [grpc_card]  # DT_STRING outputs are JSON strings
    assert json.loads(row["predictions"][0]) == Zoo(tiny_zoo).card("tiny", 2)
    status, columnar, _ = call(url, {"signature_name": "card", "inputs": {"batch": [0, 0]}})
    assert status == 200 and columnar["outputs"] == [grpc_card, grpc_card]


def test_typed_field_outputs_read_the_same(tiny_zoo, batch):
    """A server writing float_val/string_val (not tensor_content) answers REST identically."""
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, rest_port=0, tensor_content=False, run_warmup=False) as srv:
        url = f"{srv.rest_url}/v1/models/tiny/versions/1:predict"
        row = call(url, {"instances": batch.tolist()})[1]["predictions"]
        card = call(url, {"signature_name": "card", "instances": [0]})[1]["predictions"]
    np.testing.assert_allclose(np.array(row, np.float32), nearest2x(batch), rtol=1e-6)
    assert json.loads(card[0])["name"] == "tiny"


# -- status and metadata -------------------------------------------------------------------------
def _available(version: str) -> dict:
    return {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def test_model_status_is_tf_servings_json(rest_server):
    base = f"{rest_server.rest_url}/v1/models/tiny"
    assert call(base)[:2] == (200, {"model_version_status": [_available("1"), _available("2")]})
    assert call(base + "/versions/2")[:2] == (200, {"model_version_status": [_available("2")]})
    # As get_model_status_impl.cc: a label does not narrow the answer (every version is listed)
    assert call(base + "/labels/stable")[1] == {"model_version_status": [_available("1"), _available("2")]}
    assert call(f"{rest_server.rest_url}/V1/MODELS/tiny")[0] == 200  # TF Serving's paths are case-insensitive


def test_metadata_is_tf_servings_json_of_the_grpc_answer(rest_server, stubs):
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    predict, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name, request.model_spec.version_label = "tiny", "stable"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    predict.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(signatures)

    status, answer, _ = call(f"{rest_server.rest_url}/v1/models/tiny/labels/stable/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    assert list(answer["metadata"]) == ["signature_def"]
    served = answer["metadata"]["signature_def"]
    assert served == json_format.MessageToDict(
        signatures, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    image = served["signature_def"]["serving_default"]["inputs"]["image"]
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "-1", "-1", "1"]
    assert served["signature_def"]["card"]["outputs"]["card"]["dtype"] == "DT_STRING"
    assert call(f"{rest_server.rest_url}/v1/models/tiny/metadata")[1]["model_spec"]["version"] == "2"


# -- errors: {"error": ...} with TF Serving's HTTP codes -----------------------------------------
IMAGE = [[[[1.0]]]]

ERRORS = [
    # unknown model or version: NOT_FOUND -> 404
    ("POST", "/v1/models/nope:predict", {"instances": IMAGE}, 404, "Servable not found for request: Latest(nope)"),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/tiny/versions/9:predict", {"instances": IMAGE}, 404,
     "Servable not found for request: Specific(tiny, 9)"),
    ("GET", "/v1/models/tiny/versions/9", None, 404, "Could not find version 9 of model tiny"),
    ("GET", "/v1/models/tiny/versions/9/metadata", None, 404, "Specific(tiny, 9)"),
    # an unknown label is INVALID_ARGUMENT in TF Serving (server_core.cc) -> 400
    ("POST", "/v1/models/tiny/labels/nope:predict", {"instances": IMAGE}, 400,
     "Unrecognized servable version label: nope"),
    ("GET", "/v1/models/tiny/labels/nope/metadata", None, 400, "Unrecognized servable version label: nope"),
    # bad JSON and bad request objects: 400
    ("POST", "/v1/models/tiny:predict", '{"instances": [1', 400, "JSON Parse error: "),
    ("POST", "/v1/models/tiny:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/tiny:predict", "[1, 2]", 400, "JSON Value: [1,2] Is not object"),
    ("POST", "/v1/models/tiny:predict", {"image": IMAGE}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/tiny:predict", {"instances": IMAGE, "inputs": IMAGE}, 400,
     "expecting only one of 'inputs' or 'instances' keys to exist"),
    ("POST", "/v1/models/tiny:predict", {"instances": []}, 400, "No values in 'instances' array"),
    ("POST", "/v1/models/tiny:predict", {"instances": IMAGE, "signature_name": 3}, 400,
     "'signature_name' key must be a string value."),
    ("POST", "/v1/models/tiny:predict", {"instances": IMAGE, "signature_name": "nope"}, 400,
     'Serving signature name: "nope" not found in signature def'),
    # a wrong input name
    ("POST", "/v1/models/tiny:predict", {"instances": [{"picture": IMAGE[0]}]}, 400,
     "Failed to process element: 0 key: picture of 'instances' list. Error: INVALID_ARGUMENT: JSON object: "
     "does not have named input: picture"),
    ("POST", "/v1/models/tiny:predict", {"inputs": {"picture": IMAGE}}, 400,
     "Missing named input: image in 'inputs' object."),
    # a wrong dtype
    ("POST", "/v1/models/tiny:predict", {"inputs": [[[["a"]]]]}, 400,
     'JSON Value: "a" Type: String is not of expected type: float'),
    ("POST", "/v1/models/tiny:predict", {"inputs": [[[[True]]]]}, 400,
     "JSON Value: true Type: True is not of expected type: float"),
    ("POST", "/v1/models/tiny:predict", {"signature_name": "card", "instances": [1.5]}, 400,
     "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: 1.5 Type: Number "
     "is not of expected type: int32"),
    ("POST", "/v1/models/tiny:predict", {"inputs": [[[[16777217]]]]}, 400,
     "Cannot convert JSON value: 16777217 to float without loss of precision."),
    # wrong shapes
    ("POST", "/v1/models/tiny:predict", {"inputs": [[[[1.0], [2.0]], [[3.0]]]]}, 400,
     "Encountered list at unexpected size: 1 at level: 2 expected size: 2"),
    ("POST", "/v1/models/tiny:predict", {"inputs": [[[[1.0], 2.0]]]}, 400,
     "JSON Value: 2.0 found at incorrect level: 4 in the JSON DOM. Expected at level: 4"),  # sic, TF Serving's
    ("POST", "/v1/models/tiny:predict", {"instances": [[[[1.0]]], [[[1.0, 2.0]]]]}, 400,
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 1 but got: 2"),
    ("POST", "/v1/models/tiny:predict", {"inputs": [[1.0]]}, 400, "input 'image' has rank 2"),
    # paths and methods
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/tiny:predict", None, 400, "Malformed request: GET /v1/models/tiny:predict"),
    ("POST", "/v1/models/tiny", {"instances": IMAGE}, 400, "Malformed request: POST /v1/models/tiny"),
    ("PUT", "/v1/models/tiny", "{}", 400, "Malformed request: PUT /v1/models/tiny"),
    ("GET", "/v1/models/tiny/versions/99999999999999999999", None, 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
    ("POST", "/v1/models/tiny:classify", {"examples": []}, 501, "classify is not served"),
    ("GET", "/metrics", None, 404, "Not found: /metrics"),
]


@pytest.mark.parametrize("method, path, body, code, message", ERRORS, ids=[f"{e[3]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_are_tf_servings_json_and_http_codes(rest_server, method, path, body, code, message):
    status, answer, content_type = call(rest_server.rest_url + path, body, method=method)
    assert status == code
    assert content_type.startswith("application/json")
    assert list(answer) == ["error"] and message in answer["error"], answer


def test_a_body_over_the_size_limit_answers_413(tiny_zoo):
    from zoo.server.server import EmbeddedServer

    limit = 1024 * 1024  # --max-message-mb 1
    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, rest_port=0, max_message_mb=1, run_warmup=False) as srv:
        url = f"{srv.rest_url}/v1/models/tiny:predict"
        status, answer, _ = call(url, b" " * (limit + 1))
        assert status == 413 and "larger than the limit of 1 MiB" in answer["error"]
        # a body exactly at the limit is read (and then refused as bad JSON, not as too large)
        status, answer, _ = call(url, b" " * (limit - 2) + b"[]")
        assert status == 400 and "Is not object" in answer["error"]
        # a chunked body has no Content-Length: the limit holds while it is read
        connection = http.client.HTTPConnection("127.0.0.1", srv.rest.port, timeout=60)
        try:
            connection.request("POST", "/v1/models/tiny:predict", body=iter([b" " * limit, b" " * 16]),
                               encode_chunked=True)
            response = connection.getresponse()
            assert response.status == 413 and "larger than the limit" in json.loads(response.read())["error"]
        finally:
            connection.close()


# -- binding, TLS ------------------------------------------------------------------------------
def test_rest_binds_loopback_by_default_and_is_off_without_a_port(tiny_zoo, rest_server):
    from zoo.server.server import EmbeddedServer

    assert rest_server.rest.host == "127.0.0.1" and rest_server.rest_url.startswith("http://127.0.0.1:")
    with socket.create_connection(("127.0.0.1", rest_server.rest.port), timeout=10):
        pass
    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, run_warmup=False) as srv:
        assert srv.rest is None and srv.rest_url is None


def test_a_rest_port_in_use_is_a_clear_error(tiny_zoo):
    from zoo.errors import UserError
    from zoo.server.server import EmbeddedServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=rf"cannot listen on 127\.0\.0\.1:{port} for the REST API"):
            EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, rest_port=port, run_warmup=False).start()


def test_rest_over_tls_with_the_grpc_certificate(tiny_zoo, certificate, batch):
    from zoo.server.server import EmbeddedServer

    cert, key = certificate
    context = ssl.create_default_context(cafile=str(cert))
    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, tls_cert=cert, tls_key=key, rest_port=0) as srv:
        assert srv.rest_url.startswith("https://")
        base = f"https://localhost:{srv.rest.port}/v1/models/tiny"
        assert call(base + "/versions/1", context=context)[:2] == (200, {"model_version_status": [_available("1")]})
        status, answer, _ = call(base + "/versions/1:predict", {"instances": batch.tolist()}, context=context)
        assert status == 200
        np.testing.assert_allclose(np.array(answer["predictions"], np.float32), nearest2x(batch), rtol=1e-6)
        with pytest.raises(OSError):  # plain HTTP to the TLS port is refused
            call(f"http://localhost:{srv.rest.port}/v1/models/tiny")


# -- JSON <-> tensors (json_tensor.py) -----------------------------------------------------------
def test_json_output_forms():
    from zoo.server.json_tensor import array_to_json, outputs_to_json

    values = np.array([0.1, np.nan, np.inf, -np.inf, 2.0, 1 / 3, -1e-05], np.float32)
    # WriteDecimal: 6 significant digits where they read back as the same float32, else 9
    assert json.dumps(array_to_json(values, "enhanced")) == (
        "[0.1, NaN, Infinity, -Infinity, 2.0, 0.333333343, -1e-05]"
    )
    strings = np.array([b"text", b"\xff\x00"], dtype=object)
    assert array_to_json(strings, "card") == ["text", {"b64": "/wA="}]  # not UTF-8: base64
    assert array_to_json(strings, "card_bytes") == [{"b64": "dGV4dA=="}, {"b64": "/wA="}]
    two = {"b": np.array([1, 2], np.int32), "a": np.array([[True], [False]])}
    assert outputs_to_json(two, row_format=True) == {"predictions": [{"a": [True], "b": 1}, {"a": [False], "b": 2}]}
    assert outputs_to_json(two, row_format=False) == {"outputs": {"a": [[True], [False]], "b": [1, 2]}}


def test_float32_decimals_read_back_exactly_over_the_whole_range(rng):
    from zoo.server.json_tensor import array_to_json

    magnitudes = 10.0 ** rng.uniform(-45, 38.5, 20000) * rng.choice([-1, 1], 20000)
    extremes = [0.0, -0.0, 3.4028235e38, -3.4028235e38, 1.4e-45, 1.1754944e-38, 16777215.0]
    values = np.concatenate([rng.standard_normal(20000), magnitudes, extremes]).astype(np.float32)
    back = np.array(json.loads(json.dumps(array_to_json(values, "x"))), np.float32)
    np.testing.assert_array_equal(back, values)
    np.testing.assert_array_equal(np.signbit(back), np.signbit(values))


def test_json_inputs_with_several_tensors_and_base64():
    from tensorflow.core.framework import types_pb2

    from zoo.server.json_tensor import DType, arrays_from_request
    from zoo.server.servables import ServingError

    inputs = {"text": DType(types_pb2.DT_STRING), "count": DType(types_pb2.DT_INT64)}
    arrays, row = arrays_from_request(
        {"instances": [{"text": {"b64": "YWJj"}, "count": 1}, {"text": "d", "count": 2**40}]}, inputs
    )
    assert row and arrays["text"].tolist() == [b"abc", b"d"] and arrays["count"].tolist() == [1, 2**40]
    assert arrays["count"].dtype == np.int64
    with pytest.raises(ServingError, match="instances is a plain list, but expecting list of objects"):
        arrays_from_request({"instances": [1]}, inputs)
    with pytest.raises(ServingError, match="keys must be equal to: count,text"):
        arrays_from_request({"instances": [{"text": "a"}]}, inputs)
    with pytest.raises(ServingError, match="Unable to base64 decode"):
        arrays_from_request({"inputs": {"text": [{"b64": "!!"}], "count": [1]}}, inputs)
    with pytest.raises(ServingError, match="inputs is a plain value/list, but expecting an object"):
        arrays_from_request({"inputs": [1]}, inputs)
