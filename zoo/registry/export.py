"""Export a trained generator as a TF-Serving-ready SavedModel with its card and warmup records.

The layout of an exported (and later published) version directory::

    saved_model.pb, fingerprint.pb, variables/   the SavedModel (Keras 3 ExportArchive)
    assets/card.json                             the card, read by the ``card`` signature
    assets.extra/card.json                       the same card, for people and tools
    assets.extra/tf_serving_warmup_requests      PredictionLog TFRecords TF Serving replays
                                                 at load time, so the first user request
                                                 does not pay for graph optimisation

Signatures (the contract clients discover through GetModelMetadata):

- ``serving_default``: ``image`` float32 (N, H, W, 1), normalised LR of any H, W ->
  ``enhanced`` float32 (N, scale*H, scale*W, 1). The function pads H, W up to the generator's
  divisor by mirroring (the U-Net of de Haan et al. 2019, Fig. 1a, halves the size four times)
  and crops the output back, so callers never see the divisor.
- ``card``: ``batch`` int32 (N,) (values ignored) -> ``card`` string (N,), the card JSON
  in every element. Send ``batch=[0]`` and read ``card[0]``. The dummy batched input is what
  lets TF Serving run it with ``--enable_batching``: its batching session wraps every
  signature and refuses a Run() without an input tensor ("Batching Run() must have at least
  one input tensor") or with a 0-d output ("Batched output tensor has 0 dimensions"); TF
  Serving's REST API cannot call a signature without inputs either (tensorflow/serving#1676).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from zoo.errors import UserError
from zoo.registry.card import (
    CARD_ASSET_PATH,
    SIGNATURES,
    WARMUP_PATH,
    validate_card,
    write_card,
)

PREDICT_METHOD = "tensorflow/serving/predict"
DEFAULT_MIN_TILE = 256


def generator_divisor(generator, *, candidates: Sequence[int] = (1, 2, 4, 8, 16, 32, 64)) -> int:
    """Measure the multiple of H, W a generator of unknown architecture needs.

    For a network from elsewhere: a zoo.nets generator's divisor is known (``DIVISOR``, recorded
    in a run's config.json) and is passed to :func:`tile_geometry` as is. Runs the model on tiny
    odd multiples (3d x 5d) of each candidate and returns the first ``d`` whose output has the
    expected (6d x 10d) shape.
    """
    import tensorflow as tf

    for d in candidates:
        try:
            out = generator(np.zeros((1, 3 * d, 5 * d, 1), np.float32), training=False)
        except (ValueError, tf.errors.InvalidArgumentError):  # mismatched shapes: the probe's "no"
            continue
        if tuple(out.shape) == (1, 6 * d, 10 * d, 1):
            return d
    raise ValueError(f"the generator maps no size tried ({list(candidates)} x 3/5) to 2x its size")


def receptive_field_radius(generator, *, divisor: int, max_probe: int = 1024, seed: int = 0) -> int:
    """Radius (LR pixels) of the generator's receptive field, measured with gradients.

    The gradient of a block of ``divisor`` x ``divisor`` LR pixels' outputs (one period of the
    U-Net's pooling phases) with respect to a random input is exactly zero outside the
    receptive field, so the farthest non-zero gradient bounds what a tile needs as context.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    probe = max(128, 8 * divisor)
    probe += -probe % divisor
    while probe <= max_probe:
        x = tf.constant(rng.standard_normal((1, probe, probe, 1)).astype(np.float32))
        c = (probe // 2) - (probe // 2) % divisor
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = generator(x, training=False)
            target = tf.reduce_sum(y[:, 2 * c : 2 * (c + divisor), 2 * c : 2 * (c + divisor), :])
        grad = np.abs(tape.gradient(target, x).numpy()[0, :, :, 0])
        rows, cols = np.nonzero(grad)
        lo, hi = c, c + divisor - 1
        dist = lambda v: np.maximum(np.maximum(lo - v, v - hi), 0)  # noqa: E731
        radius = int(max(dist(rows).max(initial=0), dist(cols).max(initial=0)))
        touches = rows.min(initial=probe) == 0 or cols.min(initial=probe) == 0
        touches |= rows.max(initial=0) == probe - 1 or cols.max(initial=0) == probe - 1
        if not touches:
            return radius
        probe *= 2
    raise ValueError(
        f"the generator's receptive field exceeds {max_probe} px (a global operation?): "
        "it cannot be tiled exactly"
    )


def tile_geometry(
    generator,
    *,
    divisor: int,
    min_tile: int = DEFAULT_MIN_TILE,
    radius: int | None = None,
) -> dict:
    """The card's ``tile`` entry: divisor, receptive-field overlap and a tile size.

    ``divisor`` is the multiple of H, W the generator needs (a zoo.nets generator's ``DIVISOR``,
    which a training run records in config.json; :func:`generator_divisor` measures an unknown one).

    The overlap is the measured receptive-field radius rounded up to a multiple of the
    divisor, so that with a tile size that is a multiple of the divisor the tile stride
    (size - 2 x overlap) is one too: tiles then start on the U-Net's pooling grid and
    reproduce the untiled output exactly. The tile is the smallest multiple of the divisor
    that is >= ``min_tile`` and >= 4 x the overlap (at least half of each edge is useful).

    ``radius`` is the exact receptive-field radius (LR px) when the caller knows it (a zoo.nets
    generator: ``receptive_field_radius_lr(config)``); it is then not measured, because the
    gradient probe can under-read it where far-away gradients underflow in float32.
    """
    if radius is None:
        radius = receptive_field_radius(generator, divisor=divisor)
    overlap = divisor * math.ceil(radius / divisor)
    size = max(min_tile, 4 * overlap, divisor)
    size += -size % divisor
    return {"size": int(size), "overlap": int(overlap), "divisor": int(divisor)}


def pad_to_multiple(image, divisor: int):
    """Mirror-pad (N, H, W, C) at the bottom/right up to multiples of ``divisor`` (graph-safe).

    Uses TensorFlow's SYMMETRIC mode (edge pixel repeated, like numpy's ``symmetric``), applied
    in up to log2(divisor)+1 rounds so that even a 1-pixel image can be padded.
    """
    import tensorflow as tf

    if divisor == 1:
        return image
    shape = tf.shape(image)
    need_h = (divisor - shape[1] % divisor) % divisor
    need_w = (divisor - shape[2] % divisor) % divisor
    for _ in range(int(math.ceil(math.log2(divisor))) + 1):
        cur = tf.shape(image)
        step_h = tf.minimum(need_h, cur[1])
        step_w = tf.minimum(need_w, cur[2])
        image = tf.pad(image, [[0, 0], [0, step_h], [0, step_w], [0, 0]], mode="SYMMETRIC")
        need_h -= step_h
        need_w -= step_w
    return image


def enhance_whole_image(generator, lr: np.ndarray, *, divisor: int | None = None) -> np.ndarray:
    """The generator on a whole LR image as ``serving_default`` runs it, without a SavedModel.

    ``lr`` (H, W) is normalised with its own statistics (:func:`zoo.data.patches.normalise`, as
    the client does), mirror-padded to ``divisor`` (default: zoo.nets' ``DIVISOR``) and the
    output cropped back: (scale*H, scale*W) in the input's standard units, as served.
    """
    from zoo.data.patches import normalise

    if divisor is None:
        from zoo.nets.generator import DIVISOR as divisor
    h, w = lr.shape
    x = normalise(lr)[0][None, :, :, None]
    y = np.asarray(generator(pad_to_multiple(x, divisor), training=False))[0, :, :, 0]
    scale = y.shape[0] // (h + -h % divisor)
    return y[: scale * h, : scale * w]


def export_generator(
    generator,
    card: Mapping[str, Any],
    out_dir: str | Path,
    *,
    warmup_tile: int | None = None,
    warmup_batch_sizes: Sequence[int] = (1,),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``generator`` as a SavedModel with the ``serving_default`` and ``card`` signatures.

    ``card`` must be a valid card (its ``files`` are filled in by the zoo at publish time);
    ``warmup_tile`` defaults to the card's tile size. ``out_dir`` must not exist or be empty.
    Returns ``out_dir``.
    """
    import keras
    import tensorflow as tf

    card = validate_card(dict(card))
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"export directory {out} exists and is not empty")
    scale, divisor = card["scale"], card["tile"]["divisor"]
    step = progress or (lambda done, total: None)
    step(0, 3)

    # No archive.track(generator): it would store every weight a second time (measured: 7.8
    # instead of 3.9 MB for the small preset). The endpoint's own variables suffice, and
    # load_generator_weights finds them by name.
    archive = keras.export.ExportArchive()

    def serve(image):
        height, width = tf.shape(image)[1], tf.shape(image)[2]
        enhanced = generator(pad_to_multiple(image, divisor), training=False)
        # float32 out even from a mixed-precision generator: the signature is the contract.
        enhanced = tf.cast(enhanced[:, : scale * height, : scale * width, :], tf.float32)
        return {"enhanced": enhanced}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32, name="image")],
    )
    staging = Path(tempfile.mkdtemp(prefix="semzoo-card-"))
    try:
        write_card(staging, card)
        asset = tf.saved_model.Asset(str(staging / CARD_ASSET_PATH))
        # The asset must be reachable from the saved root; ExportArchive tracks only variables
        # and lookup tables itself, so attach it to the archive's trackable directly.
        archive._tf_trackable.card_asset = asset

        def card_fn(batch):
            text = tf.io.read_file(asset.asset_path)
            return {"card": tf.fill(tf.shape(batch)[:1], text)}

        archive.add_endpoint(
            "card", card_fn, input_signature=[tf.TensorSpec((None,), tf.int32, name="batch")]
        )
        archive.write_out(str(out), verbose=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    step(1, 3)
    write_card(out, card)
    write_warmup_requests(
        out / WARMUP_PATH,
        model_name=card["name"],
        tile=warmup_tile or card["tile"]["size"],
        batch_sizes=warmup_batch_sizes,
    )
    step(2, 3)
    problems = check_signatures(out)
    if problems:
        raise RuntimeError("exported SavedModel has wrong signatures: " + "; ".join(problems))
    step(3, 3)
    return out


def write_warmup_requests(
    path: str | Path,
    *,
    model_name: str,
    tile: int,
    batch_sizes: Sequence[int] = (1,),
    seed: int = 0,
) -> Path:
    """Write TF Serving warmup records: one PredictRequest per batch size at ``tile`` x ``tile``.

    The format is TF Serving's (a TFRecord file of ``PredictionLog`` protos, read from
    ``assets.extra/tf_serving_warmup_requests`` when a version loads). Inputs are seeded
    standard-normal noise, which is what a normalised image looks like to the network.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batch_sizes:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            image = rng.standard_normal((int(batch), tile, tile, 1)).astype(np.float32)
            request.inputs["image"].CopyFrom(tf.make_tensor_proto(image))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(path: str | Path) -> list:
    """Parse a warmup file back into ``PredictionLog`` messages (for checks and tests)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def check_signatures(saved_model_dir: str | Path) -> list[str]:
    """Problems with a SavedModel's signatures against the zoo contract (empty = fine).

    Reads saved_model.pb's signature defs directly, as ``saved_model_cli show`` does, without
    loading variables.
    """
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(saved_model_dir) / "saved_model.pb"
    model = saved_model_pb2.SavedModel()
    try:
        model.ParseFromString(pb.read_bytes())
    except FileNotFoundError:
        return [f"{pb.name} is missing"]
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        return [f"{pb.name} does not parse ({exc})"]
    serving = [mg for mg in model.meta_graphs if "serve" in mg.meta_info_def.tags]
    if not serving:
        return ["no meta graph tagged 'serve'"]
    defs = serving[0].signature_def
    problems = []
    expected = {
        "serving_default": ({"image": (types_pb2.DT_FLOAT, [-1, -1, -1, 1])},
                            {"enhanced": (types_pb2.DT_FLOAT, [-1, -1, -1, 1])}),
        "card": ({"batch": (types_pb2.DT_INT32, [-1])}, {"card": (types_pb2.DT_STRING, [-1])}),
    }
    assert set(expected) == set(SIGNATURES)
    for key, (inputs, outputs) in expected.items():
        if key not in defs:
            problems.append(f"signature {key!r} is missing")
            continue
        sig = defs[key]
        if sig.method_name != PREDICT_METHOD:
            problems.append(f"signature {key!r} has method {sig.method_name!r}")
        for side, want, got in (("input", inputs, sig.inputs), ("output", outputs, sig.outputs)):
            if set(got) != set(want):
                problems.append(f"signature {key!r} {side}s are {sorted(got)}, not {sorted(want)}")
                continue
            for name, (dtype, dims) in want.items():
                info = got[name]
                shape = [d.size for d in info.tensor_shape.dim]
                if info.dtype != dtype or info.tensor_shape.unknown_rank or shape != dims:
                    problems.append(f"signature {key!r} {side} {name!r} has dtype "
                                    f"{types_pb2.DataType.Name(info.dtype)} shape {shape}")
    return problems


def load_generator_weights(version_dir: str | Path, generator) -> None:
    """Copy an exported version's weights into a freshly built generator of the same preset.

    For fine-tuning (issue 5): build ``build_generator(get_preset(card["training"]["preset"]))``
    and load the parent's weights into it. Raises UserError when the architectures differ.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    # Keras' ExportArchive keeps the variables its endpoints use in ``_all_variables``, named
    # by their Keras paths ("in_conv1/kernel:0").
    saved = {v.name.split(":")[0]: v for v in getattr(loaded, "_all_variables", [])}
    target = list(generator.variables)
    mismatch = [
        t.path for t in target
        if t.path not in saved or tuple(saved[t.path].shape) != tuple(t.shape)
    ]
    if mismatch or len(saved) != len(target):
        raise UserError(
            f"the generator in {version_dir} has a different architecture ({len(saved)} saved "
            f"weights, {len(target)} here; first mismatch {mismatch[:1]}): build it with the "
            "card's preset"
        )
    for t in target:
        t.assign(saved[t.path].numpy())
