"""JSON <-> tensors as TF Serving's REST API reads and writes them (its util/json_tensor.cc).

Reading (FillPredictRequestFromJson): the signature's dtype decides what a JSON leaf may be
(a number for float, an integer in range for int32, true/false for bool, a string or
``{"b64": ...}`` for DT_STRING; a float must hold the value exactly, so 16777217 is refused
for float32), the first elements of the nesting spell the shape and every other list and
leaf must agree with it. The row format (``instances``: one element per batch item, a plain
value for a single input or an object per item) and the columnar one (``inputs``: whole
tensors, by name when there are several) are both read. Errors are INVALID_ARGUMENT with
TF Serving's messages; a JSON value quoted in one is cut short (TF Serving quotes it whole).

Writing (MakeJsonFromTensors): ``{"predictions": [...]}`` per batch item for the row format,
``{"outputs": ...}`` for the columnar one, a bare value for a single output and an object by
name for several. Float outputs are written as TF Serving writes them (6 significant digits
where they read back exactly, else 9: 0.2, not 0.20000000298023224; NaN, Infinity). DT_STRING
outputs are JSON strings, ``{"b64": ...}`` when the output's name ends in ``_bytes`` (or,
unlike TF Serving, which would write invalid JSON, when the bytes are not UTF-8).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math

import grpc
import numpy as np

from zoo.server.grpc_services import _type_name
from zoo.server.servables import ServingError

_SHOWN_CHARS = 200  # of a JSON value quoted in an error message


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


# -- JSON -> tensors (json_tensor.cc: FillPredictRequestFromJson) --------------------------------
def _shown(value) -> str:
    """A JSON value as an error message quotes it (cut short: a request can hold megabytes)."""
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if value is True or value is False:
        return str(value)
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _is_base64_object(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


class DType:
    """How JSON leaves become one TensorFlow dtype (json_tensor.cc: AddValueToTensor)."""

    def __init__(self, enum: int):
        import tensorflow as tf

        self.enum = enum
        self.tf = tf.as_dtype(enum)
        self.name = _type_name(enum)  # TensorFlow's DataTypeString: "float", "int32", "string"
        if self.tf == tf.string:
            self.kind = "string"
        elif self.tf == tf.bool:
            self.kind = "bool"
        elif self.tf in (tf.float32, tf.float64):
            self.kind = "float"
            # the largest integer the type holds exactly (IsLosslessDecimal)
            self.exact_int = 2 ** np.finfo(self.tf.as_numpy_dtype).nmant * 2 - 1
        elif self.tf.is_integer:
            self.kind = "int"
            info = np.iinfo(self.tf.as_numpy_dtype)
            self.low, self.high = int(info.min), int(info.max)
        else:
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED, f"Conversion of JSON values to type: {self.name} is not supported"
            )

    def type_error(self, value) -> ServingError:
        return invalid(f"JSON Value: {_shown(value)} Type: {_json_type(value)} is not of expected type: {self.name}")

    def lossy_error(self, value) -> ServingError:
        return invalid(f"Cannot convert JSON value: {_shown(value)} to {self.name} without loss of precision.")

    def leaf(self, value):
        """One leaf as the tensor holds it, or the error TF Serving gives for it."""
        if self.kind == "string":
            if isinstance(value, str):
                return value.encode("utf-8")
            if isinstance(value, dict):
                if not _is_base64_object(value):
                    return self._raise(invalid(f"JSON Value: {_shown(value)} not formatted correctly for base64 data"))
                try:
                    return base64.b64decode(value["b64"], validate=True)
                except (binascii.Error, ValueError):
                    return self._raise(invalid("Unable to base64 decode"))
            return self._raise(self.type_error(value))
        if self.kind == "bool":
            return value if type(value) is bool else self._raise(self.type_error(value))
        if type(value) not in (int, float):
            return self._raise(self.type_error(value))
        if self.kind == "int":
            if type(value) is not int or not self.low <= value <= self.high:
                return self._raise(self.type_error(value))
            return value
        if type(value) is int:
            if abs(value) > self.exact_int:
                return self._raise(self.lossy_error(value))
        elif math.isfinite(value) and abs(value) > np.finfo(self.tf.as_numpy_dtype).max:
            return self._raise(self.lossy_error(value))
        return value

    @staticmethod
    def _raise(error: ServingError):
        raise error

    def array(self, leaves: list, shape: list[int]) -> np.ndarray:
        """The leaves (in order) as an array of ``shape``: checked in bulk, one by one on error."""
        target = self.tf.as_numpy_dtype
        types = set(map(type, leaves))
        fast = {"float": {int, float}, "int": {int}, "bool": {bool}}.get(self.kind)
        if fast is None or not types <= fast:
            leaves = [self.leaf(v) for v in leaves]  # raises at the first bad leaf
            if self.kind == "string":
                return np.array(leaves, dtype=object).reshape(shape)
        try:
            array = np.array(leaves, dtype=np.float64 if self.kind == "float" else target)
        except OverflowError:  # an integer out of the type's range
            for v in leaves:
                self.leaf(v)
            raise
        if self.kind == "float" and array.size:
            magnitude = np.abs(np.where(np.isfinite(array), array, 0))
            suspects = magnitude > np.finfo(target).max
            if int in types:
                suspects |= magnitude > self.exact_int
            for i in np.flatnonzero(suspects):
                self.leaf(leaves[i])  # raises for an inexact integer or a finite value out of range
            array = array.astype(target)
        return array.reshape(shape)


def _dense_shape(value) -> list[int]:
    """The shape a JSON value's first elements spell (GetDenseTensorShape)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def json_to_array(value, dtype: DType) -> np.ndarray:
    """A (nested list of) JSON value(s) as a dense array of ``dtype`` (FillTensorProto).

    Every list at a level must have the size the first one has, and every leaf must sit at
    the depth the first one does; the messages are TF Serving's.
    """
    shape = _dense_shape(value)
    rank = len(shape)
    nodes = [value]
    for level in range(rank):
        if set(map(type, nodes)) != {list}:
            leaf = next(v for v in nodes if not isinstance(v, list))
            raise invalid(
                f"JSON Value: {_shown(leaf)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {rank}"
            )
        if set(map(len, nodes)) != {shape[level]}:
            bad = next(v for v in nodes if len(v) != shape[level])
            raise invalid(
                f"Encountered list at unexpected size: {len(bad)} at level: {level} expected size: {shape[level]}"
            )
        nodes = list(itertools.chain.from_iterable(nodes))
    if any(isinstance(v, list) for v in nodes):
        raise invalid(f"Encountered list at unexpected level: {rank} expected < {rank}")
    return dtype.array(nodes, shape)


def _shape_text(shape) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def _instances_to_arrays(instances: list, inputs: dict[str, DType]) -> dict[str, np.ndarray]:
    """The row format: one element per batch item (FillTensorMapFromInstancesList)."""
    if not isinstance(instances[0], dict) and len(inputs) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as per "
            "tensorinfo_map"
        )

    def is_object(v):
        return isinstance(v, dict) and not _is_base64_object(v)

    objects = is_object(instances[0])
    rows: dict[str, list[np.ndarray]] = {}

    def add(item, name: str) -> None:
        if name not in inputs:
            raise invalid(f"JSON object: does not have named input: {name}")
        array = json_to_array(item, inputs[name])
        if rows.get(name):
            first = rows[name][0]
            if first.size != array.size:
                raise invalid(f"Expecting tensor size: {first.size} but got: {array.size}")
            if first.shape != array.shape:
                raise invalid(f"Expecting shape {_shape_text(first.shape)} but got: {_shape_text(array.shape)}")
        rows.setdefault(name, []).append(array)

    for index, element in enumerate(instances):
        if objects:
            if not is_object(element):
                raise invalid(f"Expecting object but got list at item {index} of input list")
            for name, item in element.items():
                try:
                    add(item, name)
                except ServingError as error:
                    raise invalid(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {error.code.name}: {error.message}"
                    ) from None
            if set(element) != set(inputs):
                raise invalid(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {_shown(element)} "
                    f"keys must be equal to: {','.join(sorted(inputs))}"
                )
        else:
            if is_object(element):
                raise invalid(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(element, next(iter(sorted(inputs))))
            except ServingError as error:
                raise invalid(
                    f"Failed to process element: {index} of 'instances' list. Error: {error.code.name}: {error.message}"
                ) from None
    return {name: np.stack(arrays) for name, arrays in rows.items()}


def _inputs_to_arrays(value, inputs: dict[str, DType]) -> dict[str, np.ndarray]:
    """The columnar format: whole tensors by name (FillTensorMapFromInputsMap)."""
    if not isinstance(value, dict) or _is_base64_object(value):
        if len(inputs) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
                "tensorinfo_map"
            )
        name = next(iter(inputs))
        return {name: json_to_array(value, inputs[name])}
    arrays = {}
    for name in sorted(inputs):
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], inputs[name])
    return arrays


def parse_predict_body(body: bytes) -> dict:
    """The request object of a predict body (ParseJson), or TF Serving's INVALID_ARGUMENT."""
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise invalid(f"JSON Parse error: {exc}") from None
    if not isinstance(document, dict):
        raise invalid(f"JSON Value: {_shown(document)} Is not object")
    return document


def signature_name_of(document: dict) -> str:
    """The request's ``signature_name`` ("" when absent: the default signature)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(
            f"JSON Value: {_shown(document)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


def arrays_from_request(document: dict, inputs: dict[str, DType]) -> tuple[dict[str, np.ndarray], bool]:
    """The input arrays of a predict request object, and whether it was in the row format."""
    if "instances" in document and "inputs" in document:
        raise invalid(
            f"JSON Value: {_shown(document)} Not formatted correctly expecting only one of 'inputs' or "
            "'instances' keys to exist "
        )
    if "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise invalid(f"JSON Value: {_shown(document)} Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid(f"JSON Value: {_shown(document)} No values in 'instances' array")
        return _instances_to_arrays(instances, inputs), True
    if "inputs" in document:
        return _inputs_to_arrays(document["inputs"], inputs), False
    raise invalid("Missing 'inputs' or 'instances' key")


# -- tensors -> JSON (json_tensor.cc: MakeJsonFromTensors) ---------------------------------------
def to_ndarray(proto) -> np.ndarray:
    import tensorflow as tf

    if proto.dtype == tf.string.as_datatype_enum:
        # TensorFlow's own parser reads both string_val and tensor_content (EncodeStringList)
        return tf.io.parse_tensor(proto.SerializeToString(), out_type=tf.string).numpy()
    return tf.make_ndarray(proto)


def _string_json(item: bytes, as_bytes: bool):
    if not as_bytes:
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            pass  # TF Serving would write invalid JSON; base64 keeps the answer readable
    return {"b64": base64.b64encode(item).decode("ascii")}


def array_to_json(array: np.ndarray, name: str):
    """An output as TF Serving writes it: nested lists, floats in shortest form, strings as text."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        as_bytes = name.endswith("_bytes")
        items = [_string_json(x if isinstance(x, bytes) else str(x).encode(), as_bytes) for x in array.reshape(-1)]
        flat = np.empty(len(items), dtype=object)
        flat[:] = items
        return flat.reshape(array.shape).tolist()
    if array.dtype in (np.float32, np.float16):
        return tf_serving_decimals(array).tolist()
    return array.tolist()


def tf_serving_decimals(array: np.ndarray) -> np.ndarray:
    """float32 values as float64s of the decimals TF Serving writes (WriteDecimal).

    TF Serving prints 6 significant digits where they read back as the same float32, else 9
    (which always do): 0.2, not 0.20000000298023224; 0.333333343 for 1/3. The float64 nearest
    such a decimal prints as that decimal, so ``json`` writes it. Rounding happens at a scale
    10**k with |k| <= 22, where a power of ten is exact; the rare values beyond (or that would
    not read back) take numpy's shortest round-tripping text instead.
    """
    exact = array.astype(np.float32).reshape(-1)
    wide = exact.astype(np.float64)
    out = wide.copy()
    todo = np.isfinite(wide) & (wide != 0)
    fallback = todo
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.floor(np.log10(np.abs(np.where(todo, wide, 1.0))))
        for digits in (9, 6):  # the 6-digit form wins wherever it reads back
            scale = digits - 1 - exponent
            usable = todo & (np.abs(scale) <= 22)
            up, down = 10.0 ** np.clip(scale, 0, 22), 10.0 ** np.clip(-scale, 0, 22)  # exact powers
            candidate = np.where(scale >= 0, np.round(wide * up) / up, np.round(wide / down) * down)
            good = usable & (candidate.astype(np.float32) == exact)
            out[good] = candidate[good]
            if digits == 9:
                fallback = todo & ~good
    if fallback.any():
        out[fallback] = exact[fallback].astype(str).astype(np.float64)
    return out.reshape(array.shape)


def outputs_to_json(arrays: dict[str, np.ndarray], row_format: bool) -> dict:
    """``{"predictions": ...}`` (row format) or ``{"outputs": ...}`` (columnar)."""
    if not arrays:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(arrays)
    if not row_format:
        if len(names) == 1:
            return {"outputs": array_to_json(arrays[names[0]], names[0])}
        return {"outputs": {name: array_to_json(arrays[name], name) for name in names}}
    batch = None
    for name in names:
        if arrays[name].ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and arrays[name].shape[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {arrays[name].shape[0]} expecting: {batch}"
            )
        batch = arrays[name].shape[0]
    if len(names) == 1:
        return {"predictions": array_to_json(arrays[names[0]], names[0])}
    columns = {name: array_to_json(arrays[name], name) for name in names}
    return {"predictions": [{name: columns[name][i] for name in names} for i in range(batch)]}
