"""Enhance SEM image files: inputs -> outputs plan, TIFF + provenance, side-by-side PNG.

The plan is made (and every input's pixel size checked) before anything is written, so bad
input leaves no output; each output is written atomically and never replaces an existing file
unless ``overwrite``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from zoo.atomic import atomic_file
from zoo.errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")
# Above this share of clipped output pixels (0 or the maximum of an integer type, beyond the
# range before clipping), enhance warns and suggests --dtype float32.
CLIPPED_WARNING_SHARE = 0.001
MODEL_SPEC = re.compile(
    r"(?P<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?::(?P<version>[0-9]+|latest)|@(?P<label>[a-z0-9-]+))?"
)


@dataclass(frozen=True)
class ModelSpec:
    """``NAME``, ``NAME:VERSION``, ``NAME:latest`` or ``NAME@LABEL`` from the command line."""

    name: str
    version: int | None = None
    label: str | None = None
    latest: bool = False

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        match = MODEL_SPEC.fullmatch(text or "")
        if match is None:
            raise UserError(
                f"invalid model {text!r}: use NAME, NAME:VERSION or NAME@LABEL with NAME made of "
                "lower-case letters, digits and '-' (e.g. gold-on-carbon:3)"
            )
        version = match["version"]
        return cls(
            match["name"],
            int(version) if version and version != "latest" else None,
            match["label"],
            version == "latest",
        )

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.label is not None:
            return f"{self.name}@{self.label}"
        return f"{self.name}:latest" if self.latest else self.name


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    compare: Path | None
    consistency: Path | None = None  # <output stem>.consistency.tif: the data-consistency map


def plan(inputs: Sequence[Path], out: Path, *, compare: bool, overwrite: bool) -> list[Job]:
    """Map INPUT files/folders to outputs: OUT is a file for one input file, else a folder."""
    files: list[Path] = []
    single_file = len(inputs) == 1 and Path(inputs[0]).is_file()
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES)
            if not found:
                raise UserError(f"{item}: no .tif/.tiff files in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise UserError(f"{item}: no such file or folder")
    if single_file and not out.is_dir():
        if out.suffix.lower() not in TIFF_SUFFIXES:
            raise UserError(f"output {out} must end in .tif or .tiff (or be a folder)")
        outputs = [out]
    else:
        if out.exists() and not out.is_dir():
            raise UserError(f"output {out} must be a folder when enhancing several images")
        outputs = [out / f"{f.stem}.tif" for f in files]
        stems = [o.name for o in outputs]
        duplicate = next((s for s in stems if stems.count(s) > 1), None)
        if duplicate:
            raise UserError(f"two inputs would both be written to {out / duplicate}; enhance them separately")
    jobs = []
    for source, output in zip(files, outputs):
        if output.resolve() == source.resolve():
            raise UserError(f"output {output} is the input itself; choose another -o")
        job = Job(source, output, output.with_name(output.stem + ".compare.png") if compare else None,
                  consistency_path(output))
        for path in (job.output, job.compare, job.consistency):
            if path is not None and path.exists() and not overwrite:
                raise UserError(f"{path} exists; use --overwrite to replace it")
        jobs.append(job)
    paths = [p for j in jobs for p in (j.output, j.compare, j.consistency) if p is not None]
    clash = next((p for p in paths if paths.count(p) > 1), None)
    if clash is not None:
        raise UserError(f"two outputs would both be written to {clash}; enhance those inputs separately")
    return jobs


def consistency_path(output: Path) -> Path:
    """Where an output's data-consistency map goes: ``<output stem>.consistency.tif`` beside it."""
    return output.with_name(output.stem + ".consistency.tif")


def write_png_atomic(path: Path, image: np.ndarray, *, overwrite: bool) -> None:
    import cv2

    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; use --overwrite to replace it")
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    with atomic_file(path) as tmp:  # a plain file's mode, not mkstemp's 0600
        tmp.write_bytes(data.tobytes())


def clipping_warning(description: dict) -> str | None:
    """One line when more than CLIPPED_WARNING_SHARE of an output's pixels were clipped."""
    clipping = description.get("clipping") or {}
    if clipping.get("share", 0.0) <= CLIPPED_WARNING_SHARE:
        return None
    low, high = clipping["range"]
    return (
        f"{clipping['share']:.2%} of the output's pixels were clipped to {clipping['dtype']}'s range "
        f"[{low}, {high}] ({clipping['below']} below, {clipping['above']} above); --dtype float32 keeps them"
    )


def read_checked(job: Job, pixel_size_nm: float | None):
    """Read an input (data bar removed) and insist on a pixel size (file or --pixel-size)."""
    from zoo.data.sem_tiff import read_sem, require_pixel_size

    sem = read_sem(job.source, pixel_size_nm)
    require_pixel_size(sem)
    return sem


def enhance_job(
    job: Job,
    client,
    *,
    pixel_size_nm: float | None,
    server: str,
    overwrite: bool,
    progress: Callable[[int, int], None] | None = None,
    consistent: bool = False,
    strict: bool = False,
    dtype: str = "input",
) -> dict:
    """Enhance one file with an EnhanceClient; write its TIFF, its consistency map (and PNG);
    return the provenance. ``consistent``: back-project the output onto the input (see
    :mod:`zoo.client.consistency`). ``strict``: an output the consistency check flags is a
    UserError and nothing of it is written. ``dtype``: ``"input"`` (the input's pixel type,
    overshoot clipped; the provenance's ``clipping`` says how much) or ``"float32"``."""
    from zoo.client.consistency import write_consistency_tif
    from zoo.data.sem_tiff import write_sem

    sem = read_checked(job, pixel_size_nm)
    run = client.enhance(
        sem.image, sem.pixel_size_nm, progress=progress, consistency=True, consistent=consistent, dtype=dtype,
    )
    enhanced, out_pixel, cmap = run.image, run.pixel_size_nm, run.consistency_map
    if strict and cmap.flagged:
        raise UserError(f"{job.source}: {cmap.message()} (--strict: {job.output} not written)")
    description = {
        "operation": "semzoo enhance",
        "model": run.model,
        "model_version": run.version,
        "server": server,
        "input_file": str(job.source.resolve()),
        "input_vendor": sem.vendor,
        "input_pixel_size_nm": sem.pixel_size_nm,
        "input_pixel_size_source": sem.pixel_size_source,
        "input_databar_rows": sem.databar_rows,
        "scale": run.scale,
        "tiles": run.tiles,
        "tile_size": run.tile_size,
        "output_dtype": str(enhanced.dtype),
        "clipping": run.clipping,
        "consistency": {**cmap.summary(), "file": None if job.consistency is None else job.consistency.name},
    }
    written = [write_sem(job.output, enhanced, out_pixel, description, overwrite=overwrite)]
    try:  # no half result: the output, its map and its PNG are all written or none
        if job.consistency is not None:
            written.append(write_consistency_tif(
                job.consistency, cmap, sem.pixel_size_nm,
                {"operation": "semzoo enhance: data-consistency map (z, input grid)",
                 "enhanced_file": job.output.name, "input_file": description["input_file"],
                 "model": run.model, "model_version": run.version},
                overwrite=overwrite,
            ))
        if job.compare is not None:
            from zoo.client.closeups import enhance_compare_figure

            canvas = enhance_compare_figure(
                sem.image, enhanced,
                left=f"input, Lanczos x2 ({sem.pixel_size_nm:g} nm -> {out_pixel:g} nm)",
                right=f"{run.model} v{run.version} ({out_pixel:g} nm)"
                      + (" + consistent" if consistent else ""),
                pixel_size_nm=out_pixel,
                consistency=cmap.judged.z,  # with --consistent: the model's own map, what was corrected
                consistency_label="model's consistency z, before --consistent (grey: agrees; +-5 sigma)"
                                  if consistent else "",
            )
            write_png_atomic(job.compare, canvas, overwrite=overwrite)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return description
