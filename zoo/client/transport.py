"""gRPC plumbing of the client: replicas round-robin, retries with backoff, deadlines, TLS.

TF Serving replicas behind no load balancer are just a list of ``host:port``; each call goes
to the next one, and a call that finds no server there (UNAVAILABLE, or DEADLINE_EXCEEDED
while the channel never connected) is retried on the next replica after an exponential
backoff. Other errors are the server's answer and are not retried. Messages may be as large
as ``max_message_mb`` both ways (gRPC's default receive limit is 4 MiB, too small for one
512 x 512 tile's x2 output batch; tensorflow/serving#1382).
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Sequence

import grpc

from zoo.errors import UserError

DEFAULT_MAX_MESSAGE_MB = 512  # one 4096^2 float32 tile is 64 MiB in and 256 MiB out


class ServerError(UserError):
    """The server refused or failed a call (``code`` is the grpc.StatusCode)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.code = code


class Replicas:
    """Channels to one or more servers with the same models, used round-robin."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        timeout: float = 120.0,
        retries: int = 5,
        backoff_s: float = 0.2,
        max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
        tls_root_cert: str | Path | bytes | None = None,
    ):
        self.targets = list(targets)
        self.timeout, self.retries, self.backoff_s = timeout, retries, backoff_s
        size = int(max_message_mb) * 1024 * 1024
        options = [
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            # Reconnect quickly after a server restart (gRPC's default backoff grows to minutes).
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if tls_root_cert is not None:
            try:
                pem = tls_root_cert if isinstance(tls_root_cert, bytes) else Path(tls_root_cert).read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read the TLS root certificate: {exc}") from None
            credentials = grpc.ssl_channel_credentials(root_certificates=pem)
            self._channels = [grpc.secure_channel(t, credentials, options=options) for t in self.targets]
        else:
            self._channels = [grpc.insecure_channel(t, options=options) for t in self.targets]
        self._next = itertools.cycle(range(len(self._channels)))
        self._lock = threading.Lock()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def call(self, method: str, request, response_cls, *, deadline: float | None = None):
        """One unary call (``deadline``: time.monotonic() value); errors become ServerError."""
        for attempt in range(self.retries + 1):
            with self._lock:
                index = next(self._next)
            channel = self._channels[index]
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    raise ServerError("the deadline for this image passed", grpc.StatusCode.DEADLINE_EXCEEDED)
            stub = channel.unary_unary(
                method, request_serializer=type(request).SerializeToString, response_deserializer=response_cls.FromString
            )
            try:
                return stub(request, timeout=timeout)
            except grpc.RpcError as exc:
                code = exc.code()
                retryable = code == grpc.StatusCode.UNAVAILABLE or (
                    code == grpc.StatusCode.DEADLINE_EXCEEDED and not _is_ready(channel)
                )
                if not retryable or attempt == self.retries:
                    details = exc.details() or code.name
                    raise ServerError(f"{self.targets[index]}: {code.name}: {details}", code) from None
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")


def _is_ready(channel: grpc.Channel) -> bool:
    try:
        grpc.channel_ready_future(channel).result(timeout=0.05)
        return True
    except grpc.FutureTimeoutError:
        return False
