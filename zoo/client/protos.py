"""TF Serving's request/response messages without importing TensorFlow (or Keras).

``tensorflow_serving.apis.*_pb2`` import ``tensorflow.core.framework.*_pb2``, and importing
any ``tensorflow.*`` submodule runs ``tensorflow/__init__.py``, which in TF 2.21 pulls in
all of TensorFlow *and* Keras (~5 s, ~500 Keras modules) -- far too much for a client
that only needs a few protobuf messages. The generated ``*_pb2.py`` files carry their
``.proto`` definitions as one serialised ``FileDescriptorProto`` each, so we read those
bytes from the installed files (without executing them), add them to a private
descriptor pool and build message classes from it. The wire format is the protos', so
the messages are byte-for-byte what ``tensorflow_serving.apis`` would produce; the
classes just live in their own pool (they do not mix with the real ones in one message).

If the installed files ever stop looking like generated protobuf code, we fall back to
importing ``tensorflow_serving.apis`` (correct, only slower) and say so once in a
:class:`RuntimeWarning`: see :func:`_load`.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import warnings
from pathlib import Path
from types import SimpleNamespace

# gRPC method paths of the two TF Serving services the client calls.
PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"

_MESSAGES = {
    "PredictRequest": "tensorflow.serving.PredictRequest",
    "PredictResponse": "tensorflow.serving.PredictResponse",
    "GetModelMetadataRequest": "tensorflow.serving.GetModelMetadataRequest",
    "GetModelMetadataResponse": "tensorflow.serving.GetModelMetadataResponse",
    "SignatureDefMap": "tensorflow.serving.SignatureDefMap",
    "GetModelStatusRequest": "tensorflow.serving.GetModelStatusRequest",
    "GetModelStatusResponse": "tensorflow.serving.GetModelStatusResponse",
    "TensorProto": "tensorflow.TensorProto",
}
_ROOT_MODULES = (
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
)


def _module_file(module: str) -> Path:
    """The source file of a module, found without importing it or its packages."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)  # a top-level find_spec imports nothing
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"package {top!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *rest[:-1], rest[-1] + ".py")


def _read_generated(module: str) -> tuple[bytes, list[str]]:
    """A generated ``*_pb2`` module's serialised descriptor and the ``*_pb2`` modules it imports.

    The file is parsed, not executed: importing it would import its package's ``__init__``.
    """
    path = _module_file(module)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    serialized, imports = None, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imports += [f"{node.module}.{a.name}" for a in node.names if a.name.endswith("_pb2")]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            serialized = node.args[0].value
    if serialized is None:
        raise LookupError(f"no serialised descriptor in {path}")
    return serialized, imports


def _build_private_pool() -> dict:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}  # .proto name -> descriptor
    seen: set[str] = set()
    pending = list(_ROOT_MODULES)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        if module.startswith("google.protobuf."):
            # Well-known types ship with protobuf itself and are cheap to import.
            serialized, imports = importlib.import_module(module).DESCRIPTOR.serialized_pb, []
        else:
            serialized, imports = _read_generated(module)
        file_proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        files[file_proto.name] = file_proto
        pending += imports

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:  # dependencies first, as the pool requires
        if name not in added:
            for dependency in files[name].dependency:
                add(dependency)
            pool.Add(files[name])
            added.add(name)

    for name in files:
        add(name)
    return {
        short: message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
        for short, full in _MESSAGES.items()
    }


def _import_real_protos() -> dict:
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

    return {
        "PredictRequest": predict_pb2.PredictRequest,
        "PredictResponse": predict_pb2.PredictResponse,
        "GetModelMetadataRequest": get_model_metadata_pb2.GetModelMetadataRequest,
        "GetModelMetadataResponse": get_model_metadata_pb2.GetModelMetadataResponse,
        "SignatureDefMap": get_model_metadata_pb2.SignatureDefMap,
        "GetModelStatusRequest": get_model_status_pb2.GetModelStatusRequest,
        "GetModelStatusResponse": get_model_status_pb2.GetModelStatusResponse,
        "TensorProto": tensor_pb2.TensorProto,
    }


@functools.lru_cache(maxsize=None)
def _load() -> SimpleNamespace:
    try:
        classes = _build_private_pool()
        source = "private pool (TensorFlow not imported)"
    except Exception as exc:  # noqa: BLE001 - any surprise in generated files: use the real modules
        # Said once (the result is cached): the client still works, but starts TensorFlow.
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        warnings.warn(f"semzoo could not read TF Serving's protos from the installed files ({reason}); "
                      "importing tensorflow_serving.apis instead (correct, but it imports TensorFlow)",
                      RuntimeWarning, stacklevel=3)
        classes = _import_real_protos()
        source = "tensorflow_serving.apis"
    return SimpleNamespace(source=source, **classes)


def messages() -> SimpleNamespace:
    """The message classes (``.PredictRequest``, ``.TensorProto``, ...) and their ``.source``."""
    return _load()


# -- TensorProto <-> numpy, by hand (tf.make_tensor_proto / tf.make_ndarray need TensorFlow) --
# tensorflow.DataType values (tensorflow/core/framework/types.proto) the client meets.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_STRING, DT_INT64, DT_UINT16, DT_HALF = (
    1, 2, 3, 4, 5, 7, 9, 17, 19,
)
_NUMPY = {
    DT_FLOAT: ("<f4", "float_val"),
    DT_DOUBLE: ("<f8", "double_val"),
    DT_INT32: ("<i4", "int_val"),
    DT_INT64: ("<i8", "int64_val"),
    DT_UINT8: ("<u1", "int_val"),
    DT_INT16: ("<i2", "int_val"),
    DT_UINT16: ("<u2", "int_val"),
    DT_HALF: ("<f2", "half_val"),
}


def float_tensor(array, tensor_cls=None):
    """A DT_FLOAT TensorProto with little-endian ``tensor_content`` (what TF Serving reads fastest)."""
    return make_tensor(array, DT_FLOAT, tensor_cls)


def make_tensor(array, dtype: int, tensor_cls=None):
    """A numeric TensorProto of TensorFlow type ``dtype`` (DT_FLOAT, DT_INT32, ...) as tensor_content."""
    import numpy as np

    tensor_cls = tensor_cls or messages().TensorProto
    if dtype not in _NUMPY:
        raise ValueError(f"unsupported tensor dtype {dtype}")
    array = np.ascontiguousarray(array, dtype=_NUMPY[dtype][0])
    proto = tensor_cls(dtype=dtype, tensor_content=array.tobytes())
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _decode_string_list(content: bytes, count: int) -> list[bytes]:
    """TensorFlow's EncodeStringList: ``count`` varint lengths, then the bytes back to back."""
    lengths, pos = [], 0
    for _ in range(count):
        value = shift = 0
        while True:
            byte = content[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        lengths.append(value)
    out = []
    for length in lengths:
        out.append(bytes(content[pos:pos + length]))
        pos += length
    return out


def to_ndarray(proto):
    """A TensorProto as a numpy array: ``tensor_content`` or the typed ``*_val`` fields.

    As in TensorFlow, a typed field with fewer values than the shape holds is padded with its
    last value (a single value fills the tensor).
    """
    import numpy as np

    shape = tuple(d.size for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if proto.dtype == DT_STRING:
        items = (
            _decode_string_list(proto.tensor_content, count) if proto.tensor_content else list(proto.string_val)
        )
        return np.array(items, dtype=object).reshape(shape)
    if proto.dtype not in _NUMPY:
        raise ValueError(f"unsupported tensor dtype {proto.dtype}")
    dtype, field = _NUMPY[proto.dtype]
    if proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=dtype)
        if array.size != count:
            raise ValueError(f"tensor_content holds {array.size} values, shape {shape} needs {count}")
        return array.reshape(shape).astype(dtype[1:], copy=False)
    values = getattr(proto, field)
    if field == "half_val":
        array = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        array = np.array(values, dtype=dtype[1:])
    if array.size != count:
        if array.size == 0 or array.size > count:
            raise ValueError(f"{field} holds {array.size} values, shape {shape} needs {count}")
        array = np.concatenate([array, np.full(count - array.size, array[-1], array.dtype)])
    return array.reshape(shape)
