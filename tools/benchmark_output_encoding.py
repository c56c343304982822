#!/usr/bin/env python
"""What the encoding of Predict outputs costs: typed fields (TF Serving's default) or tensor_content.

    python tools/benchmark_output_encoding.py [--rounds 7]

For one request of four card tiles (4 x 576 x 576 x 1 float32 out of 288 px tiles) and one
1024 px tile (1 x 2048 x 2048 x 1): the response's size on the wire, the protobuf serialise
and parse times, the decode times of semzoo's client (zoo.client.protos.to_ndarray) and of a
stock client (tf.make_ndarray), semzoo serve's encode time, and a whole Predict call through
``semzoo serve`` on a model that only repeats pixels (so the encoding is most of the call).
Best of ``--rounds`` in milliseconds. TF Serving's own C++ encoder is not measured here (it
needs the Docker image); both of its paths copy the values once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {"4 card tiles": (4, 576, 576, 1), "one 1024 px tile": (1, 2048, 2048, 1)}


def best_ms(call, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from zoo.client import protos
    from zoo.server.grpc_services import to_tensor_proto
    from zoo.server.server import EmbeddedServer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/
    from tests.server.tiny_models import publish

    m = protos.messages()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        publish(Path(tmp) / "zoo", "bench", gain=1.0)
        servers = {
            content: EmbeddedServer(Path(tmp) / "zoo", port=0, poll_seconds=0, tensor_content=content).start()
            for content in (False, True)
        }
        try:
            for label, shape in SHAPES.items():
                out = rng.standard_normal(shape).astype(np.float32)
                image = out[:, ::2, ::2, :].copy()
                for content in (False, True):
                    name = "tensor_content" if content else "float_val"
                    proto = to_tensor_proto(out, as_content=content)
                    response = m.PredictResponse()
                    response.outputs["enhanced"].CopyFrom(m.TensorProto.FromString(proto.SerializeToString()))
                    wire = response.SerializeToString()
                    parsed = m.PredictResponse.FromString(wire)
                    assert np.array_equal(protos.to_ndarray(parsed.outputs["enhanced"]), out)
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = "bench"
                    request.inputs["image"].CopyFrom(tf.make_tensor_proto(image))
                    with grpc.insecure_channel(
                        servers[content].target, options=[("grpc.max_receive_message_length", 1 << 30)]
                    ) as channel:
                        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                        predict = best_ms(lambda: stub.Predict(request, timeout=600), rounds)
                    rows.append((
                        label, name, len(wire),
                        best_ms(lambda: to_tensor_proto(out, as_content=content), rounds),
                        best_ms(response.SerializeToString, rounds),
                        best_ms(lambda: m.PredictResponse.FromString(wire), rounds),
                        best_ms(lambda: protos.to_ndarray(parsed.outputs["enhanced"]), rounds),
                        best_ms(lambda: tf.make_ndarray(proto), rounds),
                        predict,
                    ))
        finally:
            for server in servers.values():
                server.stop(grace=1)

    print("| output | encoding | bytes | serve encode | serialise | parse | semzoo decode "
          "| tf.make_ndarray | Predict via semzoo serve |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, name, size, *ms in rows:
        print(f"| {label} | {name} | {size:,} | " + " | ".join(f"{x:.2f} ms" for x in ms) + " |")


if __name__ == "__main__":
    main()
