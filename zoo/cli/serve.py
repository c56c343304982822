"""`semzoo serve`: TF Serving's gRPC (and REST) API over the zoo, for one machine without Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import ZooOption, default_zoo


def serve(
    zoo: ZooOption = None,
    model_config: Annotated[
        Optional[Path],
        typer.Option("--model-config", help="Serve what a TF Serving models.config lists instead of the whole zoo."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; 0.0.0.0 exposes the server to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="gRPC port (0: any free port).")] = 8500,
    rest_port: Annotated[
        int,
        typer.Option(
            "--rest-port", min=0, max=65535,
            help="Also serve TF Serving's REST API on this port (the Docker image uses 8501); "
            "0, the default, serves none (as tensorflow_model_server's --rest_api_port).",
        ),
    ] = 0,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", min=0.0, help="How often to look for new versions (0: never).")
    ] = 2.0,
    max_message_mb: Annotated[
        int,
        typer.Option("--max-message-mb", min=1, max=2047, help="Largest request/response in MiB (REST: request body)."),
    ] = 512,
    tls_cert: Annotated[
        Optional[Path],
        typer.Option("--tls-cert", help="PEM certificate chain: serve gRPC (and REST: HTTPS) over TLS (needs --tls-key)."),
    ] = None,
    tls_key: Annotated[Optional[Path], typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    grace_seconds: Annotated[
        float, typer.Option("--grace-seconds", min=0.0, help="On SIGTERM/Ctrl-C, time in-flight requests get to finish.")
    ] = 10.0,
) -> None:
    """Serve the zoo's models over TF Serving's gRPC API (and with --rest-port its REST API)
    until SIGTERM or Ctrl-C.

    Speaks tensorflow.serving.PredictionService (Predict, GetModelMetadata), ModelService
    (GetModelStatus, HandleReloadConfigRequest) and grpc.health.v1, so any TF Serving client
    (and `semzoo enhance --server`) works with it. Versions are verified against their card's
    sha256 before loading; a new version that fails leaves the previous one serving.
    With --rest-port, GET /v1/models/NAME (status), GET /v1/models/NAME/metadata and
    POST /v1/models/NAME:predict answer as tensorflow_model_server's do (same host, TLS and
    size limit as gRPC).
    """
    import logging
    import signal
    import threading

    from zoo.errors import UserError
    from zoo.server.server import EmbeddedServer

    if zoo is not None and model_config is not None:
        raise UserError("give --zoo or --model-config, not both")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger("zoo.server")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        server = EmbeddedServer(
            None if model_config is not None else (zoo or default_zoo()),
            model_config=model_config,
            host=host,
            port=port,
            poll_seconds=poll_seconds,
            max_message_mb=max_message_mb,
            tls_cert=tls_cert,
            tls_key=tls_key,
            rest_port=rest_port or None,
        )
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            server.start()
            lines = server.describe()
            if not lines:
                logger.warning("no model to serve yet (waiting for versions to appear)")
            for line in lines:
                logger.info("serving %s", line)
            logger.info("ready on %s; stop with Ctrl-C or SIGTERM", server.target)
            stop.wait()
            logger.info("shutting down: finishing in-flight requests (up to %g s)", grace_seconds)
            server.stop(grace=grace_seconds)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            server.stop(grace=0)
    finally:
        logger.removeHandler(handler)


def register(app: typer.Typer) -> None:
    """Add `semzoo serve` to the root app."""
    app.command("serve")(serve)
