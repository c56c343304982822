"""TF Serving's REST API (``--rest_api_port``, 8501 in the Docker image) over the embedded server.

The same URLs, JSON and HTTP codes as tensorflow_model_server (tensorflow_serving/
model_servers/http_rest_api_handler.cc, http_rest_api_util.cc, http_server.cc and
util/json_tensor.cc), answered by the same calls as gRPC: a REST request becomes the
PredictRequest / GetModelMetadataRequest / GetModelStatusRequest a gRPC client would send,
and :class:`~zoo.server.grpc_services.PredictionService` / ``ModelService`` answer it. There
is no second inference path, so REST and gRPC cannot drift apart.

- ``GET /v1/models/NAME[/versions/N|/labels/L]``: GetModelStatus as JSON
  (``{"model_version_status": [{"version": "2", "state": "AVAILABLE", ...}]}``);
- ``GET /v1/models/NAME[/versions/N|/labels/L]/metadata``: GetModelMetadata as JSON
  (``{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}``);
- ``POST /v1/models/NAME[/versions/N|/labels/L]:predict``: ``{"instances": [...]}`` (row
  format) answers ``{"predictions": [...]}``, ``{"inputs": ...}`` (columnar) answers
  ``{"outputs": ...}``; ``"signature_name"`` picks the signature (``serving_default``).
- errors: ``{"error": "<message>"}`` with TF Serving's HTTP code for the gRPC status
  (NOT_FOUND 404, INVALID_ARGUMENT and FAILED_PRECONDITION 400, ...); a body over the size
  limit answers 413 (tensorflow_model_server has no limit).

JSON <-> tensors: :mod:`zoo.server.json_tensor`.

The HTTP side is aiohttp (a well-kept asyncio server with TLS and a body-size limit) on its
own event loop in a background thread; requests are worked on a thread pool, as gRPC's are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import threading
import urllib.parse
from concurrent import futures
from pathlib import Path

import grpc

from zoo.errors import UserError
from zoo.server.json_tensor import (
    DType,
    arrays_from_request,
    invalid,
    outputs_to_json,
    parse_predict_body,
    signature_name_of,
    to_ndarray,
)
from zoo.server.servables import ServingError

log = logging.getLogger("zoo.server")

# As http_rest_api_util.cc (matched against the whole path, case-insensitively).
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE
)

# As http_server.cc's ToHTTPStatusCode.
_HTTP_CODES = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_INT64_MAX = 2**63 - 1


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status TF Serving answers for a gRPC status code."""
    return _HTTP_CODES.get(code, 500)


# -- the API: (method, path, body) -> (HTTP status, JSON object) ---------------------------------
def _message_to_dict(message) -> dict:
    from google.protobuf import json_format

    # As TF Serving's JsonPrintOptions: always_print_primitive_fields, proto field names.
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )


class RestApi:
    """TF Serving's REST handler over the gRPC services' calls (no HTTP here: see RestServer)."""

    def __init__(self, prediction, model_service):
        self.prediction = prediction  # zoo.server.grpc_services.PredictionService
        self.model_service = model_service  # zoo.server.grpc_services.ModelService

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        """Answer one request; errors are ``{"error": message}`` with TF Serving's HTTP code."""
        try:
            return 200, self._dispatch(method.upper(), path, body)
        except ServingError as error:
            return http_status(error.code), {"error": error.message}

    def _dispatch(self, method: str, path: str, body: bytes) -> dict:
        if not _API_PATH.fullmatch(path):
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Not found: {path} (TF Serving's API is under /v1/)")
        malformed = invalid(f"Malformed request: {method} {path}")
        if method == "POST":
            match = _PREDICT_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, verb = match.groups()
            spec = self._model_spec(name, version, label)
            if verb.lower() != "predict":
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{verb.lower()} is not served: the zoo's models have predict signatures only",
                )
            return self.predict(spec, body)
        if method == "GET":
            match = _STATUS_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, metadata = match.groups()
            if not name:
                raise invalid("Missing model name in request.")
            spec = self._model_spec(name, version, label)
            return self.metadata(spec) if metadata else self.status(spec)
        raise malformed

    @staticmethod
    def _model_spec(name: str, version: str | None, label: str | None):
        from tensorflow_serving.apis import model_pb2

        spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
        if version is not None:
            if int(version) > _INT64_MAX:
                raise invalid(f"Failed to convert version: {version} to numeric.")
            spec.version.value = int(version)
        if label is not None:
            spec.version_label = urllib.parse.unquote(label)
        return spec

    def status(self, spec) -> dict:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.CopyFrom(spec)
        return _message_to_dict(self.model_service.get_model_status(request))

    def metadata(self, spec) -> dict:
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.CopyFrom(spec)
        response = self.prediction.get_model_metadata(request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return {
            "model_spec": _message_to_dict(response.model_spec),
            "metadata": {"signature_def": _message_to_dict(signatures)},
        }

    def predict(self, spec, body: bytes) -> dict:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        document = parse_predict_body(body)
        signature_name = signature_name_of(document)
        request = predict_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = signature_name
        # As TF Serving's GetInfoMap: the signature's inputs decide how the JSON is read.
        version = spec.version.value if spec.HasField("version") else None
        loaded = self.prediction.manager.lookup(spec.name, version, spec.version_label or None)
        key = signature_name or "serving_default"
        if key not in loaded.signature_defs:
            raise invalid(f'Serving signature name: "{key}" not found in signature def')
        infos = loaded.signature_defs[key].inputs
        if not infos:
            raise invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        inputs = {name: DType(info.dtype) for name, info in infos.items()}

        arrays, row_format = arrays_from_request(document, inputs)
        for name, array in arrays.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=inputs[name].tf))

        response = self.prediction.predict(request)
        return outputs_to_json({name: to_ndarray(t) for name, t in response.outputs.items()}, row_format)


# -- the HTTP server ---------------------------------------------------------------------------
class RestServer:
    """:class:`RestApi` over HTTP(S) with aiohttp, on an event loop in a background thread.

    ``port=0`` picks a free port (read :attr:`port` after :meth:`start`). ``tls`` is a
    (certificate chain, private key) pair of PEM files. Bodies over ``max_body_bytes`` answer
    413.
    """

    def __init__(
        self,
        api: RestApi,
        *,
        host: str = "127.0.0.1",
        port: int = 8501,
        max_body_bytes: int = 512 * 1024 * 1024,
        tls: tuple[Path, Path] | None = None,
        workers: int = 8,
    ):
        self.api = api
        self.host, self.requested_port = host, port
        self.max_body_bytes = max_body_bytes
        self.tls = tls
        self.workers = workers
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner = None
        self._site = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._in_flight = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
        except (OSError, ssl.SSLError) as exc:
            raise UserError(f"cannot load the TLS certificate/key for the REST API: {exc}") from None
        return context

    async def _handle(self, request):
        from aiohttp import web

        self._in_flight += 1
        try:
            path = request.rel_url.raw_path
            if request.content_length is not None and request.content_length > self.max_body_bytes:
                status, answer = 413, {"error": self._too_large()}
            else:
                try:
                    body = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    status, answer = 413, {"error": self._too_large()}
                else:
                    loop = asyncio.get_running_loop()
                    status, answer = await loop.run_in_executor(
                        self._executor, self._answer, request.method, path, body
                    )
            indent = None if status == 200 and path.lower().endswith(":predict") else 1
            return web.Response(
                status=status, text=json.dumps(answer, indent=indent), content_type="application/json"
            )
        finally:
            self._in_flight -= 1

    def _too_large(self) -> str:
        return (
            f"Request body is larger than the limit of {self.max_body_bytes // (1024 * 1024)} MiB "
            "(semzoo serve --max-message-mb)"
        )

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        try:
            return self.api.handle(method, path, body)
        except Exception as exc:  # noqa: BLE001 - a bug must answer 500, not drop the connection
            log.exception("REST %s %s failed", method, path)
            return 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            self._site = web.TCPSite(
                self._runner, self.host, self.requested_port, ssl_context=self._ssl_context(), reuse_port=False
            )
            await self._site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = self._site = None
            raise
        self.port = self._runner.addresses[0][1]

    def start(self) -> "RestServer":
        """Bind and serve (raises UserError when the port cannot be bound)."""
        self._executor = futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="semzoo-rest")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="semzoo-rest-loop", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        except UserError:
            self._shutdown_loop()
            raise
        except OSError as exc:
            self._shutdown_loop()
            host = f"[{self.host}]" if ":" in self.host else self.host
            reason = exc.strerror or exc
            raise UserError(f"cannot listen on {host}:{self.requested_port} for the REST API: {reason}") from None
        return self

    async def _stop(self, grace: float) -> None:
        if self._site is not None:
            await self._site.stop()  # refuse new connections at once
        deadline = asyncio.get_running_loop().time() + grace
        while self._in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new requests, let in-flight ones finish within ``grace`` seconds, close."""
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(grace), self._loop).result(timeout=grace + 30)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=30)
        loop.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
