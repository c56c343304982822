"""Export a zoo version as a bioimage.io model package (spec 0.5), for deepImageJ, napari & co.

A package is one zip (``semzoo zoo export NAME --format bioimageio -o FILE.zip``)::

    rdf.yaml              the model description (bioimage.io spec, format 0.5)
    tf_saved_model.zip    the zoo's SavedModel (saved_model.pb, variables/, the card asset);
                          the TF Serving warmup records stay behind
    test_input.npy        (1, H, W, 1) float32: an image in the input's own intensities
    test_output.npy       (1, 2H, 2W, 1) float32: what the SavedModel returns for it
    sample_*.tif          the same two as plain 2-D TIFFs, for people
    cover.png             2:1, Lanczos x2 of the test input | the model's output
    README.md             documentation written from the card
    card.json             the zoo card (attachment: the single source of the metadata)

How the zoo's contract maps onto bioimage.io's (nothing is changed, only described):

- The served signature ``serving_default`` takes ``image`` (N, H, W, 1) float32 *normalised* and
  returns ``enhanced`` (N, 2H, 2W, 1); the SavedModel does not normalise. The zoo's clients
  normalise with the whole image's mean and (population) standard deviation
  (:mod:`zoo.client.client`; de Haan et al. 2019, Methods), which is bioimage.io's
  ``zero_mean_unit_variance`` over the y, x and channel axes of each sample; bioimage.io
  divides by ``std + eps`` (eps = 1e-6, a relative change of 1e-6 / std).
- The zoo's client maps the output back with the *input's* statistics (``out * std + mean``).
  bioimage.io 0.5 has no postprocessing that reuses a preprocessing's per-sample statistics
  (``scale_mean_variance`` would also force the output's own standard deviation to the input's;
  it is lower, by the noise the model removes), so the output is declared as it comes out: the
  enhanced image in units of the input's standard deviation about its mean. The package's
  README says how to get back to the input's intensities.
- Axes: batch, y, x, channel (the SavedModel's NHWC) with their pixel size in nanometres, the
  input at the card's ``input_pixel_size_nm`` and the output at ``output_pixel_size_nm``; the
  output's y/x sizes refer to the input's (size x input scale / output scale = 2x).
- Tiling: sizes are multiples of the card's ``tile.divisor`` (the model pads internally, but
  tiles on the divisor grid reproduce the untiled output) and the output declares a halo of
  ``scale x tile.overlap`` px (the receptive field), so tiling runtimes crop it.

:func:`validate_package` and :func:`test_package` run ``bioimageio.spec`` and
``bioimageio.core`` (the optional extra ``semzoo[bioimageio]``) when they are installed; the
export itself needs neither.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from zoo._quiet import verbose
from zoo.atomic import atomic_file
from zoo.errors import UserError
from zoo.registry.card import CARD_ASSET_PATH, Card, read_card
from zoo.registry.files import TMP_PREFIX

FORMAT_VERSION = "0.5.4"
EPS = 1e-6
WEIGHTS_FILE = "tf_saved_model.zip"
# The SavedModel's files that go into the weights zip; assets.extra (warmup records, a second
# card copy) is for TF Serving only.
SAVED_MODEL_FILES = ("saved_model.pb", "fingerprint.pb", CARD_ASSET_PATH)
PAPER = {
    "text": "de Haan K, Ballard ZS, Rivenson Y, Wu Y, Ozcan A. Resolution enhancement in scanning "
            "electron microscopy using deep learning. Sci. Rep. 9, 12050 (2019).",
    "doi": "10.1038/s41598-019-48444-2",
}
LICENSE = "Apache-2.0"  # semzoo's licence (pyproject.toml); the card lists the training data's
AUTHORS = [{"name": "semzoo contributors"}]
COVER_SIZE = (256, 512)  # rows, columns: bioimage.io asks for 2:1 or 1:1


# -- a small YAML writer (block style; strings JSON-quoted, which YAML 1.2 reads as is) ------------
def to_yaml(value: Any, indent: int = 0) -> str:
    """``value`` (dicts, lists, str, numbers, bool, None) as block-style YAML text."""
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return pad + "{}\n"
        lines = []
        for key, item in value.items():
            head = f"{pad}{_key(str(key))}:"
            if isinstance(item, (Mapping, list, tuple)) and item:
                lines.append(head + "\n" + to_yaml(item, indent + 2))
            else:
                lines.append(f"{head} {_inline(item)}\n")
        return "".join(lines)
    if isinstance(value, (list, tuple)):
        if not value:
            return pad + "[]\n"
        lines = []
        for item in value:
            if isinstance(item, (Mapping, list, tuple)) and item:
                body = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {body[indent + 2:]}")
            else:
                lines.append(f"{pad}- {_inline(item)}\n")
        return "".join(lines)
    return pad + _inline(value) + "\n"


def _key(key: str) -> str:
    """Plain keys (format_version, tensorflow_saved_model_bundle) bare, anything else quoted."""
    plain = key.replace("_", "a").isalnum() and key.isascii() and not key[:1].isdigit()
    return key if plain and key.lower() not in ("true", "false", "null", "yes", "no", "on", "off") else _scalar(key)


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        if not np.isfinite(number):
            raise ValueError(f"cannot write {value!r} to rdf.yaml")
        return json.dumps(value.item() if isinstance(value, np.generic) else value)
    return json.dumps(str(value), ensure_ascii=False)


# -- the pieces of a package ----------------------------------------------------------------------
def sample_image(card: Mapping[str, Any], *, size: int | None = None, seed: int = 0) -> np.ndarray:
    """A seeded stand-in micrograph: bright particles of 3-12 px across on a darker, noisy
    support, some in pairs a small gap apart (the gaps of the paper's Fig. 2).

    ``size`` (px, rounded up to the tile divisor) defaults to the card's tile size. Intensities
    are those of an 8-bit scan (0-255, float32), so the test input is not pre-normalised.
    """
    import cv2

    divisor = int(card["tile"]["divisor"])
    size = int(size or card["tile"]["size"])
    size += -size % divisor
    rng = np.random.default_rng(seed)
    fine = 4  # draw at 4x and average down: anti-aliased particle edges
    canvas = np.zeros((size * fine, size * fine), np.float32)
    for _ in range(max(8, size * size // 400)):
        # Radii in pixels (1.5-6 px), as a scan at the model's own pixel size would show them.
        radius = rng.uniform(1.5, 6.0) * fine
        x, y = rng.uniform(0, size * fine, 2)
        cv2.circle(canvas, (int(x), int(y)), int(round(radius)), 1.0, -1, lineType=cv2.LINE_AA)
        if rng.random() < 0.4:  # a neighbour a small gap (0.5-2 px) away
            gap = rng.uniform(0.5, 2.0) * fine
            cv2.circle(canvas, (int(x + 2 * radius + gap), int(y)), int(round(radius)), 1.0, -1,
                       lineType=cv2.LINE_AA)
    canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.6)
    support = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 3.0)
    image = 60 + 12 * support + 150 * canvas + rng.normal(0, 8, (size, size))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def normalise(image: np.ndarray) -> np.ndarray:
    """bioimage.io's ``zero_mean_unit_variance`` of one sample: (x - mean) / (std + eps)."""
    x = np.asarray(image, np.float64)
    return ((x - x.mean()) / (x.std() + EPS)).astype(np.float32)


def run_saved_model(version_dir: str | Path, normalised: np.ndarray) -> np.ndarray:
    """The SavedModel's ``serving_default`` on one normalised (H, W) image -> (sH, sW) float32."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    serve = loaded.signatures["serving_default"]
    out = serve(image=tf.constant(normalised[None, :, :, None], tf.float32))
    return np.asarray(out["enhanced"].numpy()[0, :, :, 0], np.float32)


def cover_image(lr: np.ndarray, enhanced: np.ndarray, *, left: str, right: str) -> np.ndarray:
    """A 2:1 RGB cover: the Lanczos x2 input (left) beside the output (right), the same
    window of the output grid at full resolution."""
    import cv2

    rows, cols = COVER_SIZE
    half = cols // 2
    scale = enhanced.shape[0] // lr.shape[0]
    lanczos = cv2.resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale), interpolation=cv2.INTER_LANCZOS4)
    # Both panels on the output's grey scale, so the left one shows what Lanczos alone gives.
    lo, hi = np.percentile(enhanced, [0.5, 99.5])
    hi = hi if hi > lo else lo + 1
    # A window at the output's full resolution (the centre), so the difference is visible.
    top, left_x = max(0, (enhanced.shape[0] - rows) // 2), max(0, (enhanced.shape[1] - half) // 2)
    panels = []
    for image in (lanczos, enhanced):
        window = image[top : top + rows, left_x : left_x + half]
        if window.shape != (rows, half):
            window = cv2.resize(window, (half, rows), interpolation=cv2.INTER_NEAREST)
        grey = np.clip((window - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
        panels.append(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB))
    canvas = np.concatenate(panels, axis=1)
    for x, text in ((6, left), (half + 6, right)):
        for colour, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(canvas, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thick, cv2.LINE_AA)
    canvas[:, half - 1 : half + 1] = 255
    return canvas


def _denormalised(lr: np.ndarray, out: np.ndarray) -> np.ndarray:
    x = np.asarray(lr, np.float64)
    return (out * (x.std() + EPS) + x.mean()).astype(np.float32)


def description(card: Card, *, version: int, output_std: float) -> dict:
    """The rdf.yaml content for a zoo version (see the module docstring for the mapping)."""
    name, scale = card["name"], int(card["scale"])
    tile, training = card["tile"], card["training"]
    lr_nm, hr_nm = float(card["input_pixel_size_nm"]), float(card["output_pixel_size_nm"])
    divisor, overlap = int(tile["divisor"]), int(tile["overlap"])
    space_in = lambda axis: {  # noqa: E731
        "type": "space", "id": axis, "unit": "nanometer", "scale": lr_nm,
        # Smallest tile that keeps something after the halo is cropped, then the divisor grid.
        "size": {"min": 2 * overlap + divisor, "step": divisor},
    }
    space_out = lambda axis: {  # noqa: E731
        "type": "space", "id": axis, "unit": "nanometer", "scale": hr_nm,
        "size": {"tensor_id": "image", "axis_id": axis, "offset": 0},
        **({"halo": scale * overlap} if overlap else {}),
    }
    channel = {"type": "channel", "id": "channel", "channel_names": ["intensity"]}
    sample = card["sample_type"] or "general"
    config = {
        "semzoo": {
            "model": f"{name}:{version}",
            "parent": card["parent"],
            "created": card["created"],
            "tile": dict(tile),
            "training": {k: v for k, v in training.items() if k != "specimens"},
            "versions": dict(card["versions"]),
            "output_std_on_test_input": round(float(output_std), 4),
        },
    }
    descr = {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": f"semzoo {name} x{scale} SEM super-resolution",
        "description": (
            f"x{scale} super-resolution of scanning electron micrographs ({sample}) at "
            f"{lr_nm:.4g} nm pixels to {hr_nm:.4g} nm (de Haan et al. 2019's GAN; semzoo model "
            f"{name}:{version})."
        )[:1024],
        "version": str(version),
        "authors": AUTHORS,
        "cite": [PAPER],
        "license": LICENSE,
        "tags": ["super-resolution", "scanning-electron-microscopy", "electron-microscopy", "2d",
                 "tensorflow", "gan", sample],
        "documentation": "README.md",
        "covers": ["cover.png"],
        "attachments": [{"source": "card.json"}],
        "timestamp": card["created"],
        "inputs": [{
            "id": "image",
            "description": f"SEM image at {lr_nm:.4g} nm/px, own intensities (normalised per image by the preprocessing)",
            "axes": [{"type": "batch"}, space_in("y"), space_in("x"), channel],
            "test_tensor": {"source": "test_input.npy"},
            "sample_tensor": {"source": "sample_input.tif"},
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "zero_mean_unit_variance",
                 "kwargs": {"axes": ["y", "x", "channel"], "eps": EPS}},
            ],
        }],
        "outputs": [{
            "id": "enhanced",
            "description": f"x{scale} image at {hr_nm:.4g} nm/px in input std units: x std(input) + mean(input) for the input's scale",
            "axes": [{"type": "batch"}, space_out("y"), space_out("x"), channel],
            "test_tensor": {"source": "test_output.npy"},
            "sample_tensor": {"source": "sample_output.tif"},
            "data": {"type": "float32"},
        }],
        "weights": {
            "tensorflow_saved_model_bundle": {
                "source": WEIGHTS_FILE,
                "tensorflow_version": str(card["versions"]["tensorflow"]),
                "comment": "the zoo's TF Serving SavedModel; signature serving_default: "
                           "image (N,H,W,1) -> enhanced (N,2H,2W,1); also a 'card' signature",
            },
        },
        "config": config,
    }
    return descr


def documentation(card: Card, *, version: int, output_std: float) -> str:
    """README.md of the package: what the model does, the normalisation, training, licences."""
    name, scale = card["name"], card["scale"]
    training, tile = card["training"], card["tile"]
    lr_nm, hr_nm = card["input_pixel_size_nm"], card["output_pixel_size_nm"]
    lines = [
        f"# semzoo {name}:{version} — x{scale} SEM super-resolution",
        "",
        f"Enhances scanning electron micrographs taken at **{lr_nm:.4g} nm/px** to "
        f"**{hr_nm:.4g} nm/px** (x{scale}). The network is the GAN of de Haan, Ballard, Rivenson, "
        "Wu & Ozcan, *Resolution enhancement in scanning electron microscopy using deep learning*, "
        "Sci. Rep. 9, 12050 (2019), doi:10.1038/s41598-019-48444-2, as trained by semzoo.",
        "",
        "## Input and output",
        "",
        "- Input `image`: one grey-level SEM image (batch, y, x, channel = 1), float32, at the pixel "
        f"size above (images more than ~10 % off it are outside what the model was trained for"
        + (", except for a general model's range" if training.get("input_pixel_size_range_nm") else "")
        + ").",
        "- Preprocessing (`zero_mean_unit_variance` over y, x, channel, per image): subtract the "
        "image's mean, divide by its standard deviation (+1e-6). This is the normalisation the "
        "model was trained with (the paper's per-image normalisation); normalise the *whole* "
        "image, not each tile, or tiles differ in brightness.",
        f"- Output `enhanced`: {scale}x the input's size, in units of the input's standard "
        "deviation about its mean (the model does not undo the normalisation and bioimage.io "
        "0.5 has no postprocessing that reuses the input's statistics). For the input's "
        "intensity scale compute `enhanced * std(input) + mean(input)`, which is what "
        "`semzoo enhance` does. The output's own standard deviation differs from 1 "
        f"(on the test input: {output_std:.3f}), so rescaling it to the input's mean and "
        "standard deviation is only approximately the same.",
        f"- Tiling: tile edges are multiples of {tile['divisor']} px; each tile needs "
        f"{tile['overlap']} input px of context per side (the output halo of "
        f"{scale * tile['overlap']} px is cropped). {tile['size']} px tiles are the model's default.",
        "",
        "## Training",
        "",
        f"- preset `{training['preset']}`, {training['steps']} steps on {training['patches']} "
        f"patches from {training['pairs']} pairs"
        + (" (HR-only: the low-resolution side re-acquired from real high-resolution images)"
           if training.get("hr_only") else "")
        + ("; simulated data" if training["simulated"] else "") + ".",
        f"- data set hash `{training['dataset_hash']}`.",
        f"- parent model: {card['parent'] or 'none (trained from scratch)'} (a semzoo zoo "
        "version, not a bioimage.io id).",
        f"- made with {', '.join(f'{k} {v}' for k, v in sorted(card['versions'].items()))} on "
        f"{card['created']}.",
    ]
    sources = training.get("sources") or []
    if sources:
        lines += ["", "Training sources and their licences:", "",
                  "| source | specimen | microscope | licence |", "|---|---|---|---|"]
        for s in sources:
            lines.append(f"| {s.get('source', '?')} | {s.get('specimen', '-')} | "
                         f"{s.get('microscope', '-')} | {s.get('licence', '?')} |")
    table = card["evaluation"].get("table") if isinstance(card["evaluation"], dict) else None
    if isinstance(table, dict) and table:
        metrics = sorted({k for row in table.values() if isinstance(row, dict) for k in row})
        lines += ["", "## Evaluation (from the card)", "",
                  "| method | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for method, row in table.items():
            cells = [f"{row[m]:.4g}" if isinstance(row.get(m), (int, float)) else "-" for m in metrics]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Validation",
        "",
        "`test_input.npy` is a seeded stand-in micrograph (or the image given to `semzoo zoo "
        "export --sample-image`) and `test_output.npy` is what this SavedModel returned for it "
        "after the preprocessing above; `bioimageio.core`'s `test_model` reproduces it. The "
        "zoo's own evaluation (real micrographs, LR = every second pixel, scored against the "
        "pixels it did not sample, beside Lanczos) is in the table above when the card has one.",
        "",
        "## Licence",
        "",
        f"The model is released under {LICENSE} (semzoo's licence); the training data's licences "
        "are listed above. `card.json` is the zoo's full model card.",
        "",
    ]
    return "\n".join(lines)


def _weights_zip(version_dir: Path, target: Path) -> None:
    files = [version_dir / rel for rel in SAVED_MODEL_FILES if (version_dir / rel).is_file()]
    files += sorted(p for p in (version_dir / "variables").glob("*") if p.is_file())
    if not (version_dir / "saved_model.pb").is_file():
        raise UserError(f"{version_dir} has no saved_model.pb")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(version_dir).as_posix())


def _npy(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array[None, :, :, None], np.float32))


def export_bioimageio(
    version_dir: str | Path,
    out_zip: str | Path,
    *,
    version: int,
    image: np.ndarray | None = None,
    overwrite: bool = False,
    validate: bool = True,
    test: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write the bioimage.io package of the zoo version in ``version_dir`` to ``out_zip``.

    ``image`` (2-D, the input's own intensities) becomes the test input and cover; by default a
    seeded :func:`sample_image`. With ``validate`` and ``bioimageio.spec`` installed, the package
    is validated before it replaces ``out_zip`` (an invalid one raises UserError and nothing is
    written); with ``test`` bioimageio.core's ``test_model`` must pass too (UserError when it
    is not installed). Returns ``{"path", "bytes", "validation", "test", "model",
    "format_version"}``; validation and test are the tools' summary lines, or None where a check
    did not run (bioimageio.spec not installed, ``test`` off).
    """
    import cv2
    import tifffile

    version_dir, out_zip = Path(version_dir), Path(out_zip)
    if out_zip.suffix.lower() != ".zip":
        raise UserError(f"a bioimage.io package is a .zip file, got {out_zip.name}")
    if out_zip.exists() and not overwrite:
        raise UserError(f"{out_zip} exists; use --overwrite to replace it")
    if not out_zip.parent.is_dir():
        raise UserError(f"the folder {out_zip.parent} does not exist")
    if test:
        _require("bioimageio.core", "--test")
    card = read_card(version_dir)
    step = progress or (lambda done, total: None)
    step(0, 3)
    if image is None:
        image = sample_image(card)
    raw = np.asarray(image)
    image = raw.astype(np.float32)
    if image.ndim != 2 or min(image.shape) < 1:
        raise UserError(f"the sample image must be one grey-level 2-D image, got shape {image.shape}")
    divisor = int(card["tile"]["divisor"])
    minimum = 2 * int(card["tile"]["overlap"]) + divisor
    rows, cols = (s - s % divisor for s in image.shape)
    if min(rows, cols) < minimum:
        raise UserError(f"the sample image must be at least {minimum} x {minimum} px for this model "
                        f"(got {image.shape[0]} x {image.shape[1]})")
    image, raw = image[:rows, :cols], raw[:rows, :cols]
    if not np.isfinite(image).all() or float(image.std()) == 0:
        raise UserError("the sample image must be finite and not flat")
    enhanced = run_saved_model(version_dir, normalise(image))
    step(1, 3)
    output_std = float(enhanced.std())
    tmp_dir = Path(tempfile.mkdtemp(prefix="semzoo-bioimageio-"))
    try:
        with atomic_file(out_zip, prefix=TMP_PREFIX, suffix=".zip", sync_dir=True) as tmp_zip:
            _weights_zip(version_dir, tmp_dir / WEIGHTS_FILE)
            _npy(tmp_dir / "test_input.npy", image)
            _npy(tmp_dir / "test_output.npy", enhanced)
            # For people: the input in its own dtype, the output as the model gives it.
            sample_in = raw if raw.dtype in (np.uint8, np.uint16) else image
            tifffile.imwrite(tmp_dir / "sample_input.tif", sample_in, compression="zlib", predictor=True)
            tifffile.imwrite(tmp_dir / "sample_output.tif", enhanced, compression="zlib", predictor=True)
            label = f"{card['name']}:{version}"
            cover = cover_image(image, _denormalised(image, enhanced),
                                left=f"Lanczos x{card['scale']} of the input", right=f"semzoo {label}")
            if not cv2.imwrite(str(tmp_dir / "cover.png"), cv2.cvtColor(cover, cv2.COLOR_RGB2BGR)):
                raise RuntimeError("OpenCV could not write the cover PNG")
            (tmp_dir / "README.md").write_text(
                documentation(card, version=version, output_std=output_std), encoding="utf-8")
            shutil.copyfile(version_dir / "assets.extra" / "card.json", tmp_dir / "card.json")
            rdf = description(card, version=version, output_std=output_std)
            (tmp_dir / "rdf.yaml").write_text(
                f"# bioimage.io model package of semzoo {label}, written by `semzoo zoo export`\n"
                + to_yaml(rdf), encoding="utf-8")
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as archive:
                for name in ("rdf.yaml", "README.md", "cover.png", "card.json", "test_input.npy",
                             "test_output.npy", "sample_input.tif", "sample_output.tif", WEIGHTS_FILE):
                    # The weights zip is already compressed; storing it saves time, not bytes.
                    kind = zipfile.ZIP_STORED if name == WEIGHTS_FILE else zipfile.ZIP_DEFLATED
                    archive.write(tmp_dir / name, name, compress_type=kind)
            step(2, 3)
            summary = validate_package(tmp_zip) if validate else None
            tested = test_package(tmp_zip) if test else None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    step(3, 3)
    return {"path": str(out_zip), "bytes": out_zip.stat().st_size, "validation": summary,
            "test": tested, "model": f"{card['name']}:{version}", "format_version": FORMAT_VERSION}


FORMATS = ("bioimageio",)


def export_zoo_version(
    zoo,
    model: str,
    out_zip: str | Path,
    *,
    fmt: str = "bioimageio",
    sample_image: str | Path | None = None,
    test: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """``semzoo zoo export``: resolve ``model`` (NAME[:VERSION|@LABEL]) in ``zoo`` and write its
    package; ``sample_image`` is an SEM TIFF for the test tensors (default :func:`sample_image`)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    name, version = zoo.resolve(model)
    image = None
    if sample_image is not None:
        from zoo.data.sem_tiff import read_sem

        image = read_sem(sample_image).image
    return export_bioimageio(zoo.version_dir(name, version), out_zip, version=version, image=image,
                             test=test, overwrite=overwrite, progress=progress)


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the bioimageio namespace itself is missing or broken
        return False


def _spec_installed() -> bool:
    return _installed("bioimageio.spec")


def _core_installed() -> bool:
    return _installed("bioimageio.core")


def _require(module: str, what: str) -> None:
    if not _installed(module):
        raise UserError(f"{what} needs {module}: pip install 'semzoo[bioimageio]'")


def validate_package(package: str | Path) -> str | None:
    """Validate a package with ``bioimageio.spec`` (files and hashes included).

    Returns "bioimageio.spec X: valid" or None when bioimageio.spec is not installed; raises
    UserError with the first errors when the package is invalid.
    """
    try:
        import bioimageio.spec as spec
    except ImportError:
        return None
    with _quiet_loguru():
        descr = spec.load_description(Path(package), perform_io_checks=True)
    summary = descr.validation_summary
    if summary.status == "failed" or not hasattr(descr, "inputs"):
        errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in summary.errors][:3]
        raise UserError(f"bioimageio.spec {spec.__version__} rejects the package: "
                        + ("; ".join(errors) or summary.status))
    return f"bioimageio.spec {spec.__version__}: {summary.status}"


def test_package(package: str | Path) -> str | None:
    """Run ``bioimageio.core``'s ``test_model`` (inference on the test tensors, several sizes).

    Returns "bioimageio.core X test_model: passed" or None when bioimageio.core is not
    installed; raises UserError naming the failed checks otherwise. bioimageio.core unzips the
    weights into ./bioimageio_unzipped_tf_weights, so this runs in a temporary directory.
    """
    try:
        import bioimageio.core as core
    except ImportError:
        return None
    package = Path(package).resolve()
    cwd = os.getcwd()
    work = tempfile.mkdtemp(prefix="semzoo-bioimageio-test-")
    try:
        os.chdir(work)
        with _quiet_loguru():
            summary = core.test_model(package)
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    if summary.status != "passed":
        failed = [f"{d.name}: {'; '.join(e.msg for e in d.errors)[:300]}"
                  for d in summary.details if d.status == "failed"][:3]
        raise UserError(f"bioimageio.core {core.__version__} test_model {summary.status}: "
                        + " | ".join(failed))
    return f"bioimageio.core {core.__version__} test_model: passed"


@contextlib.contextmanager
def _quiet_loguru():
    """bioimageio logs its progress through loguru at INFO; keep the CLI's output to our lines
    (all of it with SEMZOO_VERBOSE=1)."""
    try:
        from loguru import logger
    except ImportError:
        yield
        return
    if verbose():
        yield
        return
    logger.disable("bioimageio")
    try:
        yield
    finally:
        logger.enable("bioimageio")


__all__ = ["export_bioimageio", "validate_package", "test_package", "description", "to_yaml",
           "sample_image", "normalise"]
