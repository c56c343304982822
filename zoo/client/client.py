"""EnhanceClient: super-resolve SEM images of any size through TF Serving's gRPC API.

Works against ``tensorflow_model_server`` and ``semzoo serve`` alike; needs only numpy, grpcio
and the protos (no TensorFlow, no Keras: see :mod:`zoo.client.protos`).

What it does for one image (de Haan et al., Sci. Rep. 9, 12050, 2019, Methods):

1. Asks the server which version answers (GetModelMetadata: the tensor names of
   ``serving_default``) and for that version's card (Predict on the ``card`` signature), then
   pins that version for the whole image, so a version published mid-image cannot mix two
   models in one result.
2. Normalises with the *whole* image's mean and standard deviation (the paper's per-image
   normalisation; per-tile statistics would make each tile's brightness differ).
3. Sends the whole image as one request when it fits the server memory budget and the gRPC
   message limit (:func:`zoo.client.tiling.plan_tiles`); otherwise cuts large tiles with the
   card's receptive-field context (:mod:`zoo.client.tiling`), sends batches of equal-shaped
   tiles on a small thread pool, and blends the outputs as they arrive.
4. Maps the result back to the input's intensity scale and dtype (``out * std + mean``,
   rounded and clipped for integer types, the clipped share counted; or float32, unclipped);
   the pixel size becomes ``pixel_size_nm / scale``.

Choosing a model: name one (``model=``, optionally ``version=`` or ``label=``), or give
``candidates=`` (names to consider; TF Serving's API cannot list models) and the client picks
by :func:`zoo.client.model_choice.choose_model` (a specimen model within 10 % of the image's
pixel size, else a general model), as :meth:`EnhanceClient.for_pixel_size` does. A pixel size
more than 10 % away from the model's (outside a general model's range) is a warning, or an
error with ``strict=True``.
"""

from __future__ import annotations

import json
import time
import warnings
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import grpc
import numpy as np

from zoo.client import model_choice, protos
from zoo.client.model_choice import PIXEL_SIZE_TOLERANCE
from zoo.client.result import OUTPUT_DTYPES, EnhanceResult, checked_against_input, to_dtype
from zoo.client.tiling import DEFAULT_MEMORY_BUDGET_MB, TileBlender, plan_tiles
from zoo.client.transport import DEFAULT_MAX_MESSAGE_MB, Replicas, ServerError
from zoo.errors import UserError

__all__ = ["EnhanceClient", "EnhanceResult", "ModelInfo", "ServerError"]

NORMALISATION = "per-image mean/std"


class _VersionGone(Exception):
    """The pinned version disappeared mid-image (unloaded): start the image again."""


@dataclass(frozen=True)
class ModelInfo:
    """What the client learnt about one served model version."""

    name: str
    version: int
    input_name: str
    output_name: str
    card: dict

    @property
    def scale(self) -> int:
        return int(self.card["scale"])

    @property
    def input_pixel_size_nm(self) -> float:
        return float(self.card["input_pixel_size_nm"])


class EnhanceClient:
    """A client for one model (or a list of candidates) on one server or several replicas.

    ``target``: ``"host:port"`` or a list of them (replicas; requests go round-robin and a
    retry goes to the next one). ``timeout``: seconds per call. ``retries``: how often a call
    that found no server (UNAVAILABLE, or DEADLINE_EXCEEDED before a connection existed) is
    tried again, with exponential backoff from ``backoff_s``. ``tls_root_cert``: PEM file (or
    bytes) of the CA that signed the server's certificate; None for plain TCP.
    ``batch_size`` tiles per request (at most), ``concurrency`` requests in flight.
    ``memory_budget_mb``: server memory this client's requests may take at once (default
    :data:`zoo.client.tiling.DEFAULT_MEMORY_BUDGET_MB`): an image whose whole output fits goes
    as one request, larger ones in the largest tiles that fit (see
    :func:`zoo.client.tiling.plan_tiles`); ``max_message_mb`` also bounds a request.
    ``tile_size``: a fixed LR tile edge instead (never below the card's tile). Each tile
    spends ``2 * overlap + blend`` pixels per axis on context, so larger tiles waste less.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        model: str | None = None,
        version: int | None = None,
        label: str | None = None,
        *,
        candidates: Sequence[str] = (),
        timeout: float = 120.0,
        retries: int = 5,
        backoff_s: float = 0.2,
        batch_size: int = 4,
        concurrency: int = 2,
        max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
        tls_root_cert: str | Path | bytes | None = None,
        strict: bool = False,
        tile_size: int | None = None,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    ):
        targets = [target] if isinstance(target, str) else list(target)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise UserError("give a server as HOST:PORT (or a list of them)")
        if version is not None and label is not None:
            raise UserError("give a model version or a label, not both")
        if model is None and not candidates:
            raise UserError("name a model, or give candidate model names to choose from by pixel size")
        self.targets, self.model, self.version, self.label = targets, model, version, label
        self.candidates = list(candidates)
        self.batch_size, self.concurrency, self.strict = max(1, batch_size), max(1, concurrency), strict
        if tile_size is not None and tile_size < 1:
            raise UserError(f"tile size must be positive, got {tile_size}")
        if not memory_budget_mb > 0:
            raise UserError(f"memory budget must be positive, got {memory_budget_mb}")
        self.tile_size, self.memory_budget_mb, self.max_message_mb = tile_size, memory_budget_mb, max_message_mb
        self._messages = protos.messages()
        self._replicas = Replicas(
            targets, timeout=timeout, retries=retries, backoff_s=backoff_s,
            max_message_mb=max_message_mb, tls_root_cert=tls_root_cert,
        )
        self._info: dict[tuple, ModelInfo] = {}

    @classmethod
    def for_pixel_size(
        cls, target: str | Sequence[str], pixel_size_nm: float, candidates: Sequence[str], **kwargs
    ) -> "EnhanceClient":
        """A client bound to the served candidate :meth:`choose_model` picks for this pixel size."""
        client = cls(target, candidates=candidates, **{k: v for k, v in kwargs.items() if k != "model"})
        info = client.choose_model(pixel_size_nm)
        client.model = info.name
        return client

    # -- plumbing ----------------------------------------------------------------------------
    def close(self) -> None:
        self._replicas.close()

    def __enter__(self) -> "EnhanceClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, request, response_cls, *, deadline: float | None = None):
        return self._replicas.call(method, request, response_cls, deadline=deadline)

    # -- model discovery ---------------------------------------------------------------------
    def model_info(self, name: str | None = None, version: int | None = None, label: str | None = None) -> ModelInfo:
        """Tensor names (GetModelMetadata) and card (``card`` signature) of a served version."""
        m = self._messages
        name = name or self.model
        if name is None:
            raise UserError("no model named")
        if version is None and label is None and name == self.model:
            version, label = self.version, self.label
        request = m.GetModelMetadataRequest()
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        elif label is not None:
            request.model_spec.version_label = label
        request.metadata_field.append("signature_def")
        response = self._call(protos.GET_MODEL_METADATA, request, m.GetModelMetadataResponse)
        served_version = response.model_spec.version.value
        key = (name, served_version)
        if key in self._info:
            return self._info[key]
        signature_map = m.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signature_map):
            raise ServerError(f"{name}: GetModelMetadata did not return a SignatureDefMap")
        signature = signature_map.signature_def.get("serving_default")
        if signature is None or len(signature.inputs) != 1 or len(signature.outputs) != 1:
            raise ServerError(f"{name} version {served_version} has no one-input one-output serving_default signature")
        (input_name, input_info), = signature.inputs.items()
        (output_name, _), = signature.outputs.items()
        dims = [d.size for d in input_info.tensor_shape.dim]
        if input_info.dtype != protos.DT_FLOAT or len(dims) != 4 or dims[-1] not in (-1, 1):
            raise ServerError(f"{name} version {served_version}: serving_default does not take (N,H,W,1) float32 images")
        card = self._card(name, served_version, signature_map.signature_def.get("card"))
        info = ModelInfo(name, served_version, input_name, output_name, card)
        self._info[key] = info
        return info

    def _card(self, name: str, version: int, signature) -> dict:
        """The card JSON through the ``card`` signature (any TF Serving answers it via Predict).

        The signature takes either nothing or one dummy batched input (``batch`` int32 (N,),
        which TF Serving's --enable_batching needs); we send one element and read element 0.
        """
        if signature is None:
            raise ServerError(f"{name} version {version} has no card signature: not a semzoo model?")
        if len(signature.inputs) > 1:
            raise ServerError(f"{name} version {version}: the card signature must take at most one input")
        m = self._messages
        request = m.PredictRequest()
        request.model_spec.name = name
        request.model_spec.version.value = version
        request.model_spec.signature_name = "card"
        for alias, info in signature.inputs.items():
            rank = len(info.tensor_shape.dim)
            try:
                request.inputs[alias].CopyFrom(
                    protos.make_tensor(np.zeros((1,) * rank), info.dtype, m.TensorProto)
                )
            except ValueError:
                raise ServerError(f"{name} version {version}: unsupported card input {alias!r}") from None
        response = self._call(protos.PREDICT, request, m.PredictResponse)
        if len(response.outputs) != 1:
            raise ServerError(f"{name} version {version}: the card signature must return one string")
        (proto,) = response.outputs.values()
        try:
            card = json.loads(protos.to_ndarray(proto).reshape(-1)[0])
            tile = card["tile"]
            int(card["scale"]), float(card["input_pixel_size_nm"])
            int(tile["size"]), int(tile["overlap"]), int(tile["divisor"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ServerError(f"{name} version {version} has an unusable card ({type(exc).__name__}: {exc})") from None
        method = card.get("normalisation", {}).get("method")
        if method != NORMALISATION:
            raise ServerError(f"{name} version {version}: unsupported normalisation {method!r}")
        return card

    def choose_model(self, pixel_size_nm: float | None) -> ModelInfo:
        """The candidate :func:`zoo.client.model_choice.choose_model` picks for this pixel size."""
        if pixel_size_nm is None:
            raise UserError("the image's pixel size is unknown: name a model, or give the pixel size")
        found = []
        for name in self.candidates:
            try:
                found.append(self.model_info(name))
            except ServerError as exc:
                if exc.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    raise
        if not found:
            raise UserError(f"none of the models {', '.join(self.candidates)} is served by {', '.join(self.targets)}")
        by_name = {i.name: i for i in found}
        return by_name[model_choice.choose_model({n: i.card for n, i in by_name.items()}, pixel_size_nm)]

    def check_pixel_size(self, info: ModelInfo, pixel_size_nm: float | None, *, strict: bool | None = None) -> None:
        """Warn (or, strict, refuse) when the image's pixel size is > 10 % off the model's."""
        strict = self.strict if strict is None else strict
        if pixel_size_nm is None:
            if strict:
                raise UserError(f"the image's pixel size is unknown; {info.name} expects {info.input_pixel_size_nm:g} nm")
            return
        mismatch = model_choice.pixel_size_mismatch(info.card, pixel_size_nm)
        if mismatch > PIXEL_SIZE_TOLERANCE:
            span = model_choice.pixel_size_range(info.card)
            trained = f"{info.input_pixel_size_nm:g} nm" if span is None else f"{span[0]:g}-{span[1]:g} nm range"
            message = (
                f"the image's pixel size {pixel_size_nm:g} nm differs by {mismatch:.0%} from the "
                f"{trained} that {info.name} version {info.version} was trained for"
            )
            if strict:
                raise UserError(message + " (strict: refusing)")
            warnings.warn(message + "; results may be poor", UserWarning, stacklevel=3)

    # -- inference ---------------------------------------------------------------------------
    def predict(self, batch: np.ndarray, info: ModelInfo | None = None, *, deadline: float | None = None) -> np.ndarray:
        """Run the model on a normalised (N, H, W, 1) float32 batch; returns (N, sH, sW, 1)."""
        info = info or self.model_info()
        m = self._messages
        request = m.PredictRequest()
        request.model_spec.name = info.name
        request.model_spec.version.value = info.version
        request.model_spec.signature_name = "serving_default"
        request.inputs[info.input_name].CopyFrom(protos.float_tensor(batch, m.TensorProto))
        request.output_filter.append(info.output_name)
        try:
            response = self._call(protos.PREDICT, request, m.PredictResponse, deadline=deadline)
        except ServerError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                raise _VersionGone(str(exc)) from None
            raise
        out = protos.to_ndarray(response.outputs[info.output_name])
        n, h, w = batch.shape[:3]
        if out.shape != (n, h * info.scale, w * info.scale, 1):
            raise ServerError(f"{info.name} returned shape {out.shape} for input {batch.shape}")
        return out

    def enhance(
        self,
        image: np.ndarray,
        pixel_size_nm: float | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        deadline_s: float | None = None,
        consistency: bool = False,
        consistent: bool = False,
        dtype: str = "input",
    ) -> EnhanceResult:
        """Super-resolve a 2-D image; returns an :class:`EnhanceResult` (the image and the facts
        of this run: pixel size, model, version, tiles, seconds, clipping, consistency map).

        ``result.image`` has ``scale`` times the rows and columns and the input's dtype
        (``dtype="input"``: an integer type's overshoot is clipped to its range;
        ``result.clipping`` says how much) or, with ``dtype="float32"``, float32 on the input's
        intensity scale, nothing clipped. ``result.pixel_size_nm`` is ``pixel_size_nm / scale``
        (None when the input's is unknown). ``progress(done_tiles, total_tiles)``;
        ``deadline_s`` bounds the whole image.
        ``consistency``: also compute the data-consistency map, ``result.consistency_map``, a
        :class:`zoo.client.consistency.ConsistencyMap` (the output re-acquired onto the input's
        grid minus the input, in units of the input's noise; ``.flagged`` when it contradicts
        the input beyond the calibrated threshold). ``consistent``: correct the output by
        back-projection so that it agrees with the input within its noise
        (:func:`zoo.client.consistency.project_consistent`); the map then describes the
        corrected output and keeps the model's own in ``.before_projection``, which is what
        ``.flagged`` judges. Both run here, on the client (numpy/OpenCV).
        """
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim != 2 or image.size == 0:
            raise UserError(f"expected a 2-D grey-level image, got shape {image.shape}")
        if image.dtype.kind not in "uif":
            raise UserError(f"unsupported image dtype {image.dtype}")
        if dtype not in OUTPUT_DTYPES:
            raise UserError(f"output dtype must be one of {', '.join(OUTPUT_DTYPES)}, got {dtype!r}")
        target = image.dtype if dtype == "input" else np.dtype(dtype)
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        started = time.monotonic()
        pinned = self.version is not None
        for attempt in range(3):
            info = self.model_info() if self.model is not None else self.choose_model(pixel_size_nm)
            if attempt == 0:
                self.check_pixel_size(info, pixel_size_nm)
            try:
                out, tiles, tile_size = self._enhance_with(info, image, progress, deadline)
                break
            except _VersionGone as exc:
                if pinned or attempt == 2:
                    raise ServerError(f"{info.name} version {info.version} is no longer served ({exc})",
                                      grpc.StatusCode.NOT_FOUND) from None
                self._info.clear()  # a newer version replaced it: start again with that one
        out, clipping = to_dtype(out, target)
        cmap = None
        if consistency or consistent:
            out, cmap, clipping = checked_against_input(image, out, clipping, info.scale, consistent, target)
        return EnhanceResult(
            image=out,
            pixel_size_nm=None if pixel_size_nm is None else float(pixel_size_nm) / info.scale,
            input_pixel_size_nm=None if pixel_size_nm is None else float(pixel_size_nm),
            model=info.name, version=info.version, scale=info.scale, server=", ".join(self.targets),
            tiles=tiles, tile_size=tile_size, seconds=round(time.monotonic() - started, 3),
            clipping=clipping, consistency_map=cmap,
        )

    def tile_plan(self, info: ModelInfo, height: int, width: int):
        """The :class:`zoo.client.tiling.TilePlan` this client uses for an H x W image."""
        return plan_tiles(
            height, width, scale=info.scale, card_tile=info.card["tile"], tile_size=self.tile_size,
            memory_budget_mb=self.memory_budget_mb, max_message_bytes=int(self.max_message_mb) * 2**20,
            batch_size=self.batch_size, concurrency=self.concurrency,
        )

    def _enhance_with(self, info: ModelInfo, image: np.ndarray, progress, deadline) -> tuple[np.ndarray, int, int]:
        mean = float(image.mean(dtype=np.float64))
        std = float(image.std(dtype=np.float64))
        if not np.isfinite(std) or std <= 0:
            std = 1.0  # a flat image: nothing to normalise, avoid dividing by zero
        normalised = image.astype(np.float32)
        normalised -= np.float32(mean)
        normalised /= np.float32(std)

        tile = info.card["tile"]
        plan = self.tile_plan(info, *image.shape)
        size = plan.tile
        blender = TileBlender(
            *image.shape, scale=info.scale, tile=size, context=int(tile["overlap"]), divisor=int(tile["divisor"]),
        )
        by_shape: dict[tuple, list] = {}
        for t in blender.tiles:
            by_shape.setdefault(t.shape, []).append(t)
        batches = [
            group[i:i + plan.batch] for group in by_shape.values() for i in range(0, len(group), plan.batch)
        ]
        total, done = len(blender.tiles), 0
        if progress:
            progress(0, total)

        def run(batch_tiles):
            stack = np.stack([normalised[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w] for t in batch_tiles])[..., None]
            return batch_tiles, self.predict(stack, info, deadline=deadline)

        # Keep at most 2 x concurrency batches in flight: memory stays bounded for any image size.
        with futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="semzoo-enhance") as pool:
            pending: set = set()
            queue = iter(batches)
            try:
                while True:
                    while len(pending) < 2 * self.concurrency:
                        batch = next(queue, None)
                        if batch is None:
                            break
                        pending.add(pool.submit(run, batch))
                    if not pending:
                        break
                    finished, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
                    for future in finished:
                        batch_tiles, outputs = future.result()
                        for t, out in zip(batch_tiles, outputs):
                            blender.add(t, out[..., 0])
                        done += len(batch_tiles)
                        if progress:
                            progress(done, total)
            finally:
                for future in pending:
                    future.cancel()
        del normalised
        out = blender.result()
        out *= np.float32(std)
        out += np.float32(mean)
        return out, total, size  # float32 on the input's scale; enhance() converts
