"""The embedded TF-Serving-compatible gRPC server (`semzoo serve`, and `semzoo enhance`'s own).

One process, one port: ``tensorflow.serving.PredictionService`` (Predict, GetModelMetadata),
``tensorflow.serving.ModelService`` (GetModelStatus, HandleReloadConfigRequest) and
``grpc.health.v1.Health`` (service ``""`` and one service per model name, SERVING while a
version of it is available). Requests run on a thread pool; TensorFlow releases the GIL while
it computes, so requests overlap.

Message size: one 4096 x 4096 float32 LR tile is 64 MiB on the wire, its x2 output 256 MiB
plus a few bytes of framing, so the default limit is 512 MiB (gRPC's own default receive
limit is 4 MiB; tensorflow/serving#1382). The same limit caps a REST request's body.

``rest_port`` adds TF Serving's REST API (:mod:`zoo.server.rest`) on a second port, with the
same host, TLS certificate and size limit, answered by the same services.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from pathlib import Path

import grpc

from zoo.errors import UserError
from zoo.server.config import ConfigFileSource, ZooSource
from zoo.server.grpc_services import ModelService, PredictionService, run_predict
from zoo.server.servables import LoadedVersion, ServableManager, ServingError

log = logging.getLogger("zoo.server")

DEFAULT_MAX_MESSAGE_MB = 512
MAX_WARMUP_RECORDS = 4  # TF Serving replays up to 1000; a few make the first request fast


def warmup(loaded: LoadedVersion) -> None:
    """Replay a version's ``assets.extra/tf_serving_warmup_requests`` (PredictionLog TFRecords).

    TF Serving does this before marking a version AVAILABLE; so do we. A failing warmup
    request fails the load, as in TF Serving.
    """
    path = loaded.path / "assets.extra" / "tf_serving_warmup_requests"
    if not path.is_file():
        return
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    for i, record in enumerate(tf.data.TFRecordDataset(str(path))):
        if i >= MAX_WARMUP_RECORDS:
            break
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if entry.WhichOneof("log_type") == "predict_log":
            run_predict(loaded, entry.predict_log.request, predict_pb2.PredictResponse(), as_content=True)


class EmbeddedServer:
    """A TF-Serving-compatible gRPC server over a zoo directory or a models.config.

    Exactly one of ``zoo`` (serve every model: latest + labelled versions), ``model_config``
    (a TF Serving models.config file, re-read when it changes) or ``config`` (a
    ModelServerConfig proto) says what to serve.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``port=0`` picks a free
    port (read :attr:`port` / :attr:`target` after start). ``start`` loads the models first
    (as tensorflow_model_server does), then binds and serves; a background thread polls for
    new versions every ``poll_seconds`` (0: never).

    Outputs travel in TF Serving's typed fields (``float_val``, ``string_val``), as the Docker
    image serves them, so a stock client's ``tf.make_ndarray`` reads every signature;
    ``tensor_content=True`` answers as ``--enable_serialization_as_tensor_content`` does
    (strings too, which ``tf.make_ndarray`` cannot read).
    """

    def __init__(
        self,
        zoo: str | Path | None = None,
        *,
        model_config: str | Path | None = None,
        config=None,
        host: str = "127.0.0.1",
        port: int = 8500,
        poll_seconds: float = 2.0,
        max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        workers: int = 8,
        tensor_content: bool = False,
        run_warmup: bool = True,
        rest_port: int | None = None,
    ):
        if sum(x is not None for x in (zoo, model_config, config)) != 1:
            raise UserError("serve either a zoo directory or a --model-config file (not both)")
        if (tls_cert is None) != (tls_key is None):
            raise UserError("TLS needs both --tls-cert and --tls-key")
        if max_message_mb < 1 or max_message_mb > 2047:
            raise UserError(f"--max-message-mb must be between 1 and 2047 (gRPC's limit), got {max_message_mb}")
        if zoo is not None:
            self.source = ZooSource(zoo)
        else:  # a models.config file, or a ModelServerConfig proto given in code
            self.source = ConfigFileSource(model_config, config)
        # Where a HandleReloadConfigRequest may point (any client can send one): inside the
        # zoo, or beside the models the operator's config file names. A config given in code
        # is the caller's own choice (None: no limit).
        self.allowed_roots: list[Path] | None = None
        if zoo is not None:
            self.allowed_roots = [Path(zoo).resolve()]
        elif model_config is not None:
            self.allowed_roots = sorted({s.base_path.resolve().parent for s in self.source()})
        self.host, self.requested_port = host, port
        self.poll_seconds = poll_seconds
        self.max_message_bytes = max_message_mb * 1024 * 1024
        self.tls = (Path(tls_cert), Path(tls_key)) if tls_cert is not None else None
        self.workers = workers
        self.port: int | None = None
        self.requested_rest_port = rest_port  # None: no REST API; 0: any free port
        self.rest = None  # the zoo.server.rest.RestServer while it runs
        self._server: grpc.Server | None = None
        self._health = None
        self._stopped = threading.Event()
        self.manager = ServableManager(
            self.source, warmup=warmup if run_warmup else None, on_change=self._update_health
        )
        self.prediction = PredictionService(self.manager, as_content=tensor_content)
        self.model_service = ModelService(self.manager, self.reload_config)

    # -- life cycle -------------------------------------------------------------------------
    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> "EmbeddedServer":
        from grpc_health.v1 import health, health_pb2_grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.manager.poll()  # load before binding, like tensorflow_model_server
        options = [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ]
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="semzoo-grpc"),
            options=options,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self.prediction, server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self.model_service, server)
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        address = f"{self.host}:{self.requested_port}" if ":" not in self.host else f"[{self.host}]:{self.requested_port}"
        try:
            if self.tls is not None:
                try:
                    key, cert = self.tls[1].read_bytes(), self.tls[0].read_bytes()
                except OSError as exc:
                    raise UserError(f"cannot read the TLS certificate/key: {exc}") from None
                port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise UserError(f"cannot listen on {address}: {exc}") from None
        if not port:
            raise UserError(f"cannot listen on {address} (in use, or not an address of this machine?)")
        self.port = port
        if self.requested_rest_port is not None:
            from zoo.server.rest import RestApi, RestServer

            self.rest = RestServer(
                RestApi(self.prediction, self.model_service), host=self.host, port=self.requested_rest_port,
                max_body_bytes=self.max_message_bytes, tls=self.tls, workers=self.workers,
            ).start()  # before the gRPC server starts: a REST port in use fails the start cleanly
        server.start()
        self._server = server
        self._update_health()
        self.manager.start_polling(self.poll_seconds)
        log.info("listening on %s%s (%s)", self.target, " with TLS" if self.tls else "", self.source.describe())
        if self.rest is not None:
            log.info("REST API on %s", self.rest.url)
        return self

    @property
    def rest_url(self) -> str | None:
        """``http(s)://host:port`` of the REST API while it runs (None without one)."""
        return self.rest.url if self.rest is not None else None

    def stop(self, grace: float = 10.0) -> None:
        """Graceful shutdown: refuse new RPCs at once, let in-flight ones finish within ``grace`` s."""
        if self._server is None:
            return
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        self.manager.stop_polling()
        stopped = self._server.stop(grace)  # returns at once; gRPC and REST drain together
        if self.rest is not None:
            self.rest.stop(grace)
            self.rest = None
        stopped.wait()
        self._server = None
        self._stopped.set()
        log.info("stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has finished (True) or ``timeout`` passed (False)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(grace=5.0)

    # -- model config ------------------------------------------------------------------------
    def reload_config(self, config) -> None:
        """Serve a new ModelServerConfig (HandleReloadConfigRequest); loads before returning.

        Base paths outside :attr:`allowed_roots` are refused (UserError): a SavedModel is a
        program, and a remote client must not choose which programs this server runs.
        """
        if self.allowed_roots is not None:
            for model in config.model_config_list.config:
                base = Path(model.base_path).resolve()
                if not any(base == root or root in base.parents for root in self.allowed_roots):
                    raise UserError(
                        f"model {model.name!r}: base_path {model.base_path} is outside "
                        f"{', '.join(map(str, self.allowed_roots))}; this server loads models only from there"
                    )
        if isinstance(self.source, ConfigFileSource):
            self.source.replace(config)
        else:
            self.source = ConfigFileSource(None, config)
            self.manager.set_source(self.source)
        self.manager.poll()
        # As ServerCore::WaitUntilConfiguredModelsAvailable: the call fails if a model has no
        # available version after loading (the ones that loaded keep serving).
        available = self.manager.available()
        missing = [m.name for m in self.source() if not available.get(m.name)]
        if missing:
            raise ServingError(
                grpc.StatusCode.UNKNOWN,
                "Some models did not become available: {" + "".join(f"{name}, " for name in missing) + "}",
            )

    def _update_health(self) -> None:
        if self._health is None:
            return
        from grpc_health.v1 import health_pb2

        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        available = self.manager.available()
        self._health.set("", serving)
        for name in self.manager.model_names():
            self._health.set(name, serving if available.get(name) else not_serving)

    def describe(self) -> list[str]:
        """One line per served model: name, versions, labels (for the CLI's log)."""
        lines = []
        for name, versions in sorted(self.manager.available().items()):
            labels = self.manager.labels(name)
            label_text = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
            card = self.manager.lookup(name).card or {}
            sizes = ""
            if "input_pixel_size_nm" in card:
                sizes = f", {card['input_pixel_size_nm']:g} nm -> {card['output_pixel_size_nm']:g} nm"
            lines.append(
                f"{name}: version(s) {', '.join(map(str, versions))}"
                + (f" (labels {label_text})" if label_text else "")
                + sizes
            )
        for name in self.manager.model_names():
            if name not in self.manager.available():
                lines.append(f"{name}: no version available (see GetModelStatus / the log)")
        return lines


def serve_zoo_versions(zoo_root: str | Path, versions: dict[str, list[int]]) -> EmbeddedServer:
    """Start an in-process server of just these ``{name: [version, ...]}`` of a zoo, on a free
    loopback port (what `semzoo enhance` and `semzoo evaluate --hr-only` run models through).

    Raises UserError, with the loader's messages, when a version does not load.
    """
    from tensorflow_serving.config import model_server_config_pb2

    root = Path(zoo_root).resolve()
    config = model_server_config_pb2.ModelServerConfig()
    for name, numbers in versions.items():
        entry = config.model_config_list.config.add(name=name, base_path=str(root / name), model_platform="tensorflow")
        entry.model_version_policy.specific.versions.extend(sorted(set(numbers)))
    embedded = EmbeddedServer(config=config, host="127.0.0.1", port=0, poll_seconds=0).start()
    wanted = [(n, v) for n, numbers in versions.items() for v in sorted(set(numbers))]
    missing = [(n, v) for n, v in wanted if v not in embedded.manager.available().get(n, [])]
    if missing:
        problems = "; ".join(
            status.error_message for n, v in missing for _version, status in embedded.manager.status(n, v)
        )
        embedded.stop(grace=0)
        raise UserError(f"cannot load {', '.join(f'{n}:{v}' for n, v in missing)}: {problems}")
    return embedded
