"""TF Serving configuration: models.config from the zoo, and parsers for every config file.

``models.config`` is a ``ModelServerConfig`` in protobuf text format (TF Serving's
``--model_config_file``): one ``config`` per zoo model with ``base_path`` = prefix/name,
``model_platform: "tensorflow"``, a ``specific`` version policy covering the labelled versions
and the latest one, and the ``version_labels`` from the zoo. TF Serving only accepts labels
that point at versions it has loaded, hence the policy lists every labelled version.

``batching.config`` (``BatchingParameters``) and ``monitoring.config`` (``MonitoringConfig``)
are checked with descriptors that mirror TF Serving's own protos
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
tensorflow_serving/config/monitoring_config.proto), because the ``tensorflow-serving-api``
wheel ships only ``apis/`` and part of ``config/``.
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import UserError
from zoo.registry.store import Zoo

HEADER = (
    "# TF Serving model server config, generated from the zoo by `semzoo zoo config`.\n"
    "# Do not edit by hand: publish or label models, then regenerate.\n"
)
DEFAULT_BASE_PATH = "/models"


def models_config(zoo: Zoo, *, base_path: str = DEFAULT_BASE_PATH):
    """The zoo as a ``tensorflow.serving.ModelServerConfig`` message."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()  # an empty zoo is still a (valid) empty list
    prefix = base_path.rstrip("/") or "/"
    for name in zoo.models():
        labels = zoo.labels(name)
        versions = zoo.versions(name)
        existing = set(versions)
        dangling = sorted(label for label, v in labels.items() if v not in existing)
        if dangling:
            raise UserError(
                f"model {name!r}: label(s) {', '.join(dangling)} point at missing versions; "
                f"fix with `semzoo zoo label`"
            )
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{prefix.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.specific.versions.extend(
            sorted(set(labels.values()) | {versions[-1]})
        )
        for label, version in labels.items():
            entry.version_labels[label] = version
    return config


def models_config_text(zoo: Zoo, *, base_path: str = DEFAULT_BASE_PATH) -> str:
    """``models.config`` text for the zoo (deterministic: same zoo, same bytes)."""
    from google.protobuf import text_format

    body = text_format.MessageToString(models_config(zoo, base_path=base_path))
    text = HEADER + body
    parse_models_config(text)  # what we write must be what TF Serving reads
    return text


def write_models_config(zoo: Zoo, out: str | Path, *, base_path: str = DEFAULT_BASE_PATH) -> Path:
    """Write ``models.config`` atomically (TF Serving may be polling it); return the path."""
    from zoo.registry.files import atomic_write_text

    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out} is a directory; give the config file's path")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, models_config_text(zoo, base_path=base_path))
    return out


def _parse(text: str, message, what: str):
    from google.protobuf import text_format

    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise UserError(f"invalid {what}: {exc}") from None
    return message


def parse_models_config(text: str):
    """Parse ``models.config`` text with TF Serving's ``ModelServerConfig`` proto."""
    from tensorflow_serving.config import model_server_config_pb2

    config = _parse(text, model_server_config_pb2.ModelServerConfig(), "models.config")
    for entry in config.model_config_list.config:
        if entry.version_labels:
            policy = entry.model_version_policy
            served = set(policy.specific.versions) if policy.HasField("specific") else None
            missing = [l for l, v in entry.version_labels.items() if served is not None and v not in served]
            if missing:
                raise UserError(
                    f"invalid models.config: model {entry.name!r} labels {missing} point at "
                    "versions outside its version policy (TF Serving refuses them)"
                )
    return config


# ---- BatchingParameters and MonitoringConfig ------------------------------------------------
_MESSAGES: dict[str, type] = {}


def _tfs_message(full_name: str):
    """Message classes for the TF Serving config protos the pip wheel does not ship."""
    if _MESSAGES:
        return _MESSAGES[full_name]
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with a real TF Serving
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)

    def field(msg, name, number, ftype, type_name=None, repeated=False):
        f = msg.field.add(name=name, number=number, type=ftype)
        f.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
        if type_name:
            f.type_name = type_name

    session = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = session.message_type.add(name="BatchingParameters")
    i64, string = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
    field(batching, "max_batch_size", 1, F.TYPE_MESSAGE, i64)
    field(batching, "batch_timeout_micros", 2, F.TYPE_MESSAGE, i64)
    field(batching, "max_enqueued_batches", 3, F.TYPE_MESSAGE, i64)
    field(batching, "num_batch_threads", 4, F.TYPE_MESSAGE, i64)
    field(batching, "thread_pool_name", 5, F.TYPE_MESSAGE, string)
    field(batching, "allowed_batch_sizes", 6, F.TYPE_INT64, repeated=True)
    field(batching, "pad_variable_length_inputs", 7, F.TYPE_BOOL)
    pool.Add(session)

    monitoring = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    prometheus = monitoring.message_type.add(name="PrometheusConfig")
    field(prometheus, "enable", 1, F.TYPE_BOOL)
    field(prometheus, "path", 2, F.TYPE_STRING)
    mc = monitoring.message_type.add(name="MonitoringConfig")
    field(mc, "prometheus_config", 1, F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
    pool.Add(monitoring)

    for name in ("tensorflow.serving.BatchingParameters", "tensorflow.serving.MonitoringConfig"):
        _MESSAGES[name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return _MESSAGES[full_name]


def parse_batching_config(text: str):
    """Parse and sanity-check ``batching.config`` (TF Serving's BatchingParameters)."""
    params = _parse(text, _tfs_message("tensorflow.serving.BatchingParameters")(), "batching.config")
    sizes = list(params.allowed_batch_sizes)
    if sizes:
        if sizes != sorted(set(sizes)) or sizes[0] < 1:
            raise UserError("invalid batching.config: allowed_batch_sizes must increase from >= 1")
        if not params.HasField("max_batch_size") or sizes[-1] != params.max_batch_size.value:
            raise UserError(
                "invalid batching.config: the last allowed_batch_sizes entry must equal "
                "max_batch_size (TF Serving refuses to start otherwise)"
            )
    if params.HasField("num_batch_threads") and params.num_batch_threads.value < 1:
        raise UserError("invalid batching.config: num_batch_threads must be >= 1")
    return params


def parse_monitoring_config(text: str):
    """Parse ``monitoring.config`` (TF Serving's MonitoringConfig)."""
    return _parse(text, _tfs_message("tensorflow.serving.MonitoringConfig")(), "monitoring.config")
