"""TF Serving's gRPC services over a :class:`~zoo.server.servables.ServableManager`.

The status codes and message texts are TF Serving's own (tensorflow_serving/servables/
tensorflow/predict_util.cc, get_model_metadata_impl.cc, model_servers/get_model_status_impl.cc,
model_service_impl.cc, core/manager.h), so a client cannot tell this server from
tensorflow_model_server for the calls semzoo's client makes:

- unknown model or version: NOT_FOUND ``Servable not found for request: Latest(m)`` /
  ``Specific(m, 3)``; unknown label: INVALID_ARGUMENT ``Unrecognized servable version label: x``;
- unknown signature: FAILED_PRECONDITION ``Serving signature key "x" not found.``;
- missing/extra input: INVALID_ARGUMENT ``input size does not match signature: ...``;
  unparsable tensor: INVALID_ARGUMENT ``tensor parsing error: image``; wrong dtype:
  INVALID_ARGUMENT ``Expects arg[0] to be float but double is provided`` (TensorFlow's
  text); wrong rank or fixed dimension: INVALID_ARGUMENT;
- GetModelMetadata packs a ``SignatureDefMap`` of *every* signature of the MetaGraphDef into
  an ``Any`` under ``metadata["signature_def"]``.
"""

from __future__ import annotations

import logging
import threading

import grpc
import numpy as np
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from zoo.server.servables import LoadedVersion, ServableManager, ServingError

log = logging.getLogger("zoo.server")

_STRING = 7  # DT_STRING


def _abort(context: grpc.ServicerContext, error: ServingError):
    context.abort(error.code, error.message)


def _spec_version(model_spec) -> tuple[int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    if choice == "version":
        return model_spec.version.value, None
    if choice == "version_label":
        return None, model_spec.version_label
    return None, None


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# Packed fixed-width fields of tensorflow.TensorProto (tensor.proto): field number, wire dtype.
_PACKED_FIXED = {"f": (5, "<f4"), "d": (6, "<f8")}  # float_val, double_val


def to_tensor_proto(array: np.ndarray, *, as_content: bool):
    """A TensorProto of an output, as TF Serving writes it (Tensor::AsProto*).

    ``as_content`` is ``--enable_serialization_as_tensor_content``: every dtype goes to
    ``tensor_content``, strings too, as TensorFlow's EncodeStringList (varint lengths, then the
    bytes) -- which ``tf.make_ndarray`` cannot read (it only decodes strings from
    ``string_val``). Otherwise the typed repeated fields (``float_val``, ``string_val``, ...),
    TF Serving's default and what the Docker image serves: every output reads with
    ``tf.make_ndarray``.
    """
    import tensorflow as tf

    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        items = [x if isinstance(x, bytes) else str(x).encode() for x in array.reshape(-1)]
        proto = tf.make_tensor_proto(np.array(items, dtype=object).reshape(array.shape))
        if as_content:
            proto.ClearField("string_val")
            proto.tensor_content = b"".join(_encode_varint(len(x)) for x in items) + b"".join(items)
        return proto
    if as_content:
        return tf.make_tensor_proto(np.ascontiguousarray(array))  # numeric: tensor_content
    proto = tf.make_tensor_proto(np.zeros((), array.dtype))
    proto.ClearField("tensor_content")
    for dim in array.shape:
        proto.tensor_shape.dim.add(size=dim)
    if array.dtype.char in _PACKED_FIXED:
        # float_val.extend(...) costs ~50 ns a value (67 ms for four 576x576 tiles); a packed
        # fixed-width field is the little-endian bytes on the wire, so parse those instead.
        number, wire = _PACKED_FIXED[array.dtype.char]
        data = np.ascontiguousarray(array, dtype=wire).tobytes()
        proto.ClearField("float_val" if number == 5 else "double_val")
        proto.MergeFromString(_encode_varint(number << 3 | 2) + _encode_varint(len(data)) + data)
        return proto
    fields = {"q": "int64_val", "l": "int64_val", "?": "bool_val"}
    name = fields.get(array.dtype.char, "int_val")
    if array.dtype == np.float16:
        name, values = "half_val", array.view(np.uint16).reshape(-1).tolist()
    else:
        values = array.reshape(-1).tolist()
    proto.ClearField(name)
    getattr(proto, name).extend(values)
    return proto


def _type_name(dtype: int) -> str:
    """TensorFlow's C++ DataTypeString: DT_FLOAT -> "float", DT_DOUBLE -> "double"."""
    from tensorflow.core.framework import types_pb2

    try:
        return types_pb2.DataType.Name(dtype)[3:].lower()
    except ValueError:
        return "unknown"


def _check_input(alias: str, index: int, tensor_proto, tensor_info) -> np.ndarray:
    import tensorflow as tf

    if tensor_proto.dtype != tensor_info.dtype:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Expects arg[{index}] to be {_type_name(tensor_info.dtype)} but "
            f"{_type_name(tensor_proto.dtype)} is provided",
        )
    try:
        array = tf.make_ndarray(tensor_proto)
    except Exception:  # noqa: BLE001 - TF's own parser decides what is parsable
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}") from None
    shape = tensor_info.tensor_shape
    if not shape.unknown_rank:
        expected = [d.size for d in shape.dim]
        pretty = "[" + ",".join("?" if d < 0 else str(d) for d in expected) + "]"
        got = "[" + ",".join(map(str, array.shape)) + "]"
        if array.ndim != len(expected):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{alias}' has rank {array.ndim} (shape {got}); the signature expects rank "
                f"{len(expected)} (shape {pretty})",
            )
        if any(e >= 0 and e != g for e, g in zip(expected, array.shape)):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{alias}' has shape {got}; the signature expects {pretty}",
            )
    return array


def run_predict(loaded: LoadedVersion, request, response, *, as_content: bool) -> None:
    """Validate a PredictRequest against the signature, run it and fill the response."""
    import tensorflow as tf

    signature_name = request.model_spec.signature_name or "serving_default"
    signature = loaded.signature_defs.get(signature_name)
    function = loaded.functions.get(signature_name)
    if signature is None or function is None:
        raise ServingError(
            grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.'
        )
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = signature_name
    response.model_spec.version.value = loaded.version

    request_inputs, signature_inputs = set(request.inputs), set(signature.inputs)
    if len(request_inputs) != len(signature_inputs):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(request_inputs)}!={len(signature_inputs)} "
            f"len({{{','.join(sorted(request_inputs))}}}) != len({{{','.join(sorted(signature_inputs))}}}). "
            f"Sent extra: {{{','.join(sorted(request_inputs - signature_inputs))}}}. "
            f"Missing but required: {{{','.join(sorted(signature_inputs - request_inputs))}}}.",
        )
    feeds = {}
    for index, (alias, info) in enumerate(sorted(signature.inputs.items())):
        if alias not in request.inputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Signature input alias: {alias}(feed name: {info.name}) not found in request and no "
                f"default value provided. Inputs expected to be in the request "
                f"{{{','.join(sorted(request_inputs))}}}, or default input alias set: ",
            )
        feeds[alias] = tf.constant(_check_input(alias, index, request.inputs[alias], info))

    aliases = list(request.output_filter) or sorted(signature.outputs)
    for alias in aliases:
        if alias not in signature.outputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(sorted(signature.outputs))}}}.",
            )
    try:
        outputs = function(**feeds)
    except tf.errors.OpError as exc:  # TensorFlow's error codes are gRPC's, number for number
        code = next((c for c in grpc.StatusCode if c.value[0] == exc.error_code), grpc.StatusCode.UNKNOWN)
        raise ServingError(code, str(exc.message).strip().splitlines()[0]) from None
    except (ValueError, TypeError) as exc:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(exc).strip().splitlines()[0]) from None
    for alias in aliases:
        tensor = to_tensor_proto(outputs[alias].numpy(), as_content=as_content)
        # CopyFrom copies a repeated field value by value (11 ms for four 576x576 tiles'
        # float_val); through the wire format it is a memcpy (0.5 ms)
        target = response.outputs[alias]
        target.Clear()  # an alias named twice in output_filter is written once, as by CopyFrom
        target.MergeFromString(tensor.SerializeToString())


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata (Classify, Regress and
    MultiInference answer UNIMPLEMENTED: SR models have no such signatures)."""

    def __init__(self, manager: ServableManager, *, as_content: bool = False):
        self.manager = manager
        self.as_content = as_content
        self.in_flight = 0  # Predict calls running now
        self.requests = 0  # Predict calls received (the round-robin test counts them)
        self._lock = threading.Lock()

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return self.predict(request)
        except ServingError as error:
            _abort(context, error)

    def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return self.get_model_metadata(request)
        except ServingError as error:
            _abort(context, error)

    # The calls themselves, raising ServingError: gRPC above and REST (zoo.server.rest) use them.
    def predict(self, request):
        """A PredictRequest's PredictResponse."""
        from tensorflow_serving.apis import predict_pb2

        with self._lock:
            self.in_flight += 1
            self.requests += 1
        try:
            if not request.HasField("model_spec"):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
            version, label = _spec_version(request.model_spec)
            loaded = self.manager.lookup(request.model_spec.name, version, label)
            response = predict_pb2.PredictResponse()
            run_predict(loaded, request, response, as_content=self.as_content)
            return response
        finally:
            with self._lock:
                self.in_flight -= 1

    def get_model_metadata(self, request):
        """A GetModelMetadataRequest's GetModelMetadataResponse."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.metadata_field:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        for metadata_field in request.metadata_field:
            if metadata_field != "signature_def":
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {metadata_field} is not supported"
                )
        version, label = _spec_version(request.model_spec)
        loaded = self.manager.lookup(request.model_spec.name, version, label)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in loaded.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = loaded.name
        response.model_spec.version.value = loaded.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, manager: ServableManager, reload_config):
        self.manager = manager
        self._reload_config = reload_config  # callable(ModelServerConfig) -> None, raises UserError

    def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return self.get_model_status(request)
        except ServingError as error:
            _abort(context, error)

    def get_model_status(self, request):
        """A GetModelStatusRequest's GetModelStatusResponse, raising ServingError (gRPC and REST)."""
        from tensorflow_serving.apis import get_model_status_pb2

        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        name = request.model_spec.name
        # As get_model_status_impl.cc: only an explicit version narrows the answer; a
        # version_label is ignored (all versions are listed).
        version, _label = _spec_version(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, status in self.manager.status(name, version):
            entry = response.model_version_status.add(version=number, state=status.state)
            entry.status.error_code = status.error_code
            entry.status.error_message = status.error_message
        return response

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802 - gRPC method name
        from tensorflow_serving.apis import model_management_pb2

        from zoo.errors import UserError

        response = model_management_pb2.ReloadConfigResponse()
        if request.config.WhichOneof("config") != "model_config_list":
            code, message = grpc.StatusCode.INVALID_ARGUMENT, (
                "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                "Only ModelConfigList is currently supported"
            )
        else:
            try:
                self._reload_config(request.config)
                code, message = grpc.StatusCode.OK, ""
            except UserError as exc:
                code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
            except ServingError as exc:
                code, message = exc.code, exc.message
        response.status.error_code = code.value[0]
        response.status.error_message = message
        if code is not grpc.StatusCode.OK:
            log.error("ReloadConfig failed: %s", message)
            context.abort(code, message)
        return response
