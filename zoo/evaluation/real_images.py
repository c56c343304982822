"""Quality on real SEM images without pairs (`semzoo evaluate --hr-only`).

No public LR/HR pairs of one field exist, so a real image is its own pair: the LR is every
second pixel of the real (HR) image, exactly what a stepping scan at twice the pitch with the
same dwell records (:func:`zoo.sim.acquisition.stepping_scan_record`), and each candidate x2
image is scored on the HR pixels that LR did not sample (:func:`~zoo.sim.acquisition.unsampled_mask`),
8 px of border excluded. Candidates: nearest, bicubic, Lanczos (the model's own input,
:func:`zoo.data.register.lanczos_upsample2x`) and each zoo model, run exactly as `semzoo enhance`
runs it: its exported SavedModel in an in-process server, through :class:`~zoo.client.client.EnhanceClient`
(whole-image normalisation, the card's tiling and blending).

Scoring, per candidate and image:

1. Sub-pixel shift fit. Half-pixel-centred upsampling puts LR pixel ``i`` at HR coordinate
   ``2i + 0.5`` while the record took HR pixel ``2i``; networks may add shifts of their own. The
   candidate is shifted by ``(dx, dy)`` (``cv2.warpAffine``, Lanczos-4, reflected border) on a
   0.25 px grid in [-1, 1]^2, then on a 0.05 px grid within +-0.2 px of the best, keeping the
   shift of highest PSNR (the grid of the interim maintainer script this module replaced,
   tools/real_image_psnr.py, whose numbers it reproduces bit for bit).
2. Gain/offset: a least-squares ``gain * candidate + offset`` fit to the HR on the scored pixels
   (:func:`zoo.evaluation.quality.fit_intensity`), as PSNR after intensity matching defines it.
3. PSNR on the scored pixels, data range = the HR's range there; SSIM (Wang et al. 2004,
   :func:`~zoo.evaluation.quality.structural_similarity`) of the shifted, gain/offset-matched
   candidate against the HR over the whole image inside the border (sampled pixels included:
   SSIM's 11x11 windows need contiguous pixels, and after the shift no candidate copies them).

4. PSNR on the **unscanned lines** alone (``psnr_lines_db``): the HR rows the LR never visited
   (odd rows), with its own shift and gain/offset fit. A real detector low-passes the signal
   along the fast-scan axis (x), so the noise of an unsampled pixel on a scanned line is
   correlated with the LR samples beside it on that line, and a candidate that carries the LR's
   noise along x is rewarded there for it. Lines the LR never scanned were recorded at other
   times and share no noise with it: on them a gain is structure, not copied noise.

Per image the HR's noise (:func:`zoo.sim.acquisition.estimate_noise_sigma` on the scored pixels)
gives the noise-limited ceiling ``10 log10(range^2 / sigma^2)``: a perfect, noise-free prediction
still differs from the noisy HR by its noise, so no candidate can score much above it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import cv2
import numpy as np

from zoo.errors import UserError

SCALE = 2
PHASE = (0, 0)  # the record starts at the HR's first pixel (x, y)
BORDER_PX = 8
MIN_SIZE_PX = 32
COARSE_SHIFTS = np.arange(-1, 1.01, 0.25)  # px
FINE_SPAN, FINE_STEP = 0.2, 0.05  # px around the coarse best
BASELINES = ("nearest", "bicubic", "lanczos")
REFERENCE = "lanczos"
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")

# A model: (LR in the file's dtype, LR pixel size in nm or None) -> x2 image.
Enhancer = Callable[[np.ndarray, "float | None"], np.ndarray]


@dataclass
class HrImage:
    """A real image read for the HR-only evaluation: float32, cropped to even height/width."""

    name: str
    path: Path
    image: np.ndarray
    dtype: np.dtype
    pixel_size_nm: float | None
    pixel_size_source: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class CandidateScore:
    psnr_db: float
    ssim: float
    shift_px: tuple[float, float]  # (dx, dy) applied to the candidate
    gain: float
    offset: float
    psnr_lines_db: float = math.nan  # on the unscanned lines only (their own shift and gain/offset fit)


@dataclass
class ImageResult:
    name: str
    path: Path
    shape: tuple[int, int]
    pixel_size_nm: float | None
    pixel_size_source: str
    data_range: float
    noise_sigma: float
    noise_ceiling_db: float
    scores: dict[str, CandidateScore]
    crop: dict[str, np.ndarray] = field(default_factory=dict)  # HR + aligned candidates, for the figure
    crop_box: tuple[int, int, int] = (0, 0, 0)  # x0, y0, size
    crop_reason: str = ""


# -- inputs ------------------------------------------------------------------------------------
def find_hr_images(paths: Sequence[Path]) -> list[Path]:
    """The image files named, and those in the folders named (TIFF or PNG, not hidden), in order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"--hr-only {path} does not exist")
        if path.is_dir():
            found += [p for p in sorted(path.iterdir())
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
        else:
            found.append(path)
    if not found:
        raise UserError(f"no HR image (TIFF or PNG) in {', '.join(map(str, paths))}")
    return list(dict.fromkeys(found))


def read_hr(path: Path, pixel_size_nm: float | None = None, name: str | None = None) -> HrImage:
    """Read one real image (any semzoo TIFF, or a PNG without pixel size) as an HR; refuses < 32x32."""
    from zoo.data.sem_tiff import read_sem

    path = Path(path)
    if path.suffix.lower() == ".png":  # PNGs carry no pixel size: --pixel-size, or none
        if pixel_size_nm is not None and not (math.isfinite(pixel_size_nm) and pixel_size_nm > 0):
            raise UserError(f"--pixel-size must be a positive number of nm, got {pixel_size_nm:g}")
        source = "none" if pixel_size_nm is None else "user"
        image, found_px, notes = _read_png(path), pixel_size_nm, []
    else:
        sem = read_sem(path, pixel_size_nm)
        image, source, found_px, notes = sem.image, sem.pixel_size_source, sem.pixel_size_nm, list(sem.warnings)
    h, w = image.shape
    if min(h, w) < MIN_SIZE_PX:
        raise UserError(f"{path}: image is {w}x{h} pixels; the HR-only evaluation needs at least "
                        f"{MIN_SIZE_PX}x{MIN_SIZE_PX}")
    even = np.ascontiguousarray(image[: h // 2 * 2, : w // 2 * 2], dtype=np.float32)
    return HrImage(name or path.stem, path, even, image.dtype, found_px, source, notes)


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"{path}: not a readable PNG image")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[..., :3]
        if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]):
            image = image[..., 0]
        else:
            raise UserError(f"{path}: a colour PNG; the evaluation needs a grey-level SEM image")
    if image.dtype.kind not in "uf":
        raise UserError(f"{path}: unsupported pixel type {image.dtype}")
    return image


def unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique (``name``, ``name-2``, ...) when folders share file names."""
    names, seen = [], {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


# -- scoring -----------------------------------------------------------------------------------
def lr_record(hr: np.ndarray) -> np.ndarray:
    """The LR a stepping scan at twice the pitch records: every second HR pixel from (0, 0)."""
    from zoo.sim.acquisition import stepping_scan_record

    return stepping_scan_record(hr, SCALE, PHASE)


def scored_mask(shape: tuple[int, int], border_px: int = BORDER_PX) -> np.ndarray:
    """The HR pixels the LR did not sample, minus a border of ``border_px``."""
    from zoo.sim.acquisition import unsampled_mask

    mask = unsampled_mask(tuple(shape), SCALE, PHASE)
    b = border_px
    if b:
        mask[:b] = mask[-b:] = False
        mask[:, :b] = mask[:, -b:] = False
    return mask


def unscanned_lines_mask(shape: tuple[int, int], border_px: int = BORDER_PX) -> np.ndarray:
    """The scored pixels on the HR rows the LR never scanned (the rows ``y != PHASE[1] mod SCALE``)."""
    mask = scored_mask(shape, border_px)
    mask[PHASE[1]::SCALE] = False
    return mask


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px: Lanczos-4 interpolation, reflected border, float32."""
    img = np.asarray(image, dtype=np.float32)
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, matrix, (img.shape[1], img.shape[0]), flags=cv2.INTER_LANCZOS4,
                          borderMode=cv2.BORDER_REFLECT)


def fit_shift(candidate: np.ndarray, hr: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """``(psnr_db, dx, dy)``: the shift of ``candidate`` (coarse grid, then fine) of highest PSNR."""
    from zoo.evaluation.quality import peak_signal_noise_ratio

    # The scored pixels as one (1, N) row: the same PSNR, bit for bit, without the full-image work.
    reference = np.asarray(hr, dtype=np.float64)[mask][None]

    def psnr(dx, dy):
        return peak_signal_noise_ratio(reference, shifted(candidate, dx, dy)[mask][None])

    best = None
    for dx in COARSE_SHIFTS:
        for dy in COARSE_SHIFTS:
            s = psnr(dx, dy)
            if best is None or s > best[0]:
                best = (s, dx, dy)
    _, dx0, dy0 = best
    for dx in np.arange(dx0 - FINE_SPAN, dx0 + FINE_SPAN + 0.01, FINE_STEP):  # as the interim script
        for dy in np.arange(dy0 - FINE_SPAN, dy0 + FINE_SPAN + 0.01, FINE_STEP):
            s = psnr(dx, dy)
            if s > best[0]:
                best = (s, dx, dy)
    return float(best[0]), float(best[1]), float(best[2])


def score(candidate: np.ndarray, hr: np.ndarray, mask: np.ndarray,
          lines_mask: np.ndarray | None = None) -> tuple[CandidateScore, np.ndarray]:
    """The candidate's :class:`CandidateScore` and its shifted, gain/offset-matched image
    (``lines_mask``: the unscanned lines, scored on their own, see the module docstring)."""
    from zoo.evaluation.quality import fit_intensity, structural_similarity

    psnr_db, dx, dy = fit_shift(candidate, hr, mask)
    psnr_lines = fit_shift(candidate, hr, lines_mask)[0] if lines_mask is not None and lines_mask.any() else math.nan
    moved = shifted(candidate, dx, dy).astype(np.float64)
    gain, offset = fit_intensity(moved, hr, mask=mask)
    matched = gain * moved + offset
    b = BORDER_PX
    ssim = structural_similarity(hr[b:-b, b:-b], matched[b:-b, b:-b], match_intensity=False,
                                 data_range=data_range(hr, mask))
    return CandidateScore(psnr_db, ssim, (round(dx, 4), round(dy, 4)), gain, offset, psnr_lines), matched


def data_range(hr: np.ndarray, mask: np.ndarray) -> float:
    """The HR's peak-to-peak range on the scored pixels (the PSNR's data range)."""
    values = np.asarray(hr)[mask]
    return float(values.max() - values.min())


def noise_ceiling(hr: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """``(sigma, ceiling_db)``: the HR's noise and ``10 log10(range^2 / sigma^2)`` on ``mask``."""
    from zoo.sim.acquisition import estimate_noise_sigma

    sigma = estimate_noise_sigma(hr, mask=mask)
    peak = data_range(hr, mask)
    ceiling = 10 * math.log10(peak**2 / sigma**2) if sigma > 0 and peak > 0 else math.inf
    return sigma, ceiling


def baselines(lr: np.ndarray) -> dict[str, np.ndarray]:
    """Nearest, bicubic and Lanczos x2 of the LR (Lanczos exactly the model's input)."""
    from zoo.data.register import lanczos_upsample2x
    from zoo.evaluation.quality import baseline_upsample

    lr = np.asarray(lr, dtype=np.float32)
    return {"nearest": baseline_upsample(lr, "nearest"), "bicubic": baseline_upsample(lr, "bicubic"),
            "lanczos": lanczos_upsample2x(lr)}


def evaluate_image(hr: HrImage, models: Mapping[str, Enhancer] | None = None,
                   *, crop_px: int = 96) -> ImageResult:
    """Score the baselines and each model on one real image (see the module docstring)."""
    image = hr.image
    mask = scored_mask(image.shape)
    if not mask.any():
        raise UserError(f"{hr.path}: no pixel left to score inside the {BORDER_PX}-px border")
    peak = data_range(image, mask)
    if not peak > 0:
        raise UserError(f"{hr.path}: the image is constant on the scored pixels")
    lr = lr_record(image)
    candidates = baselines(lr)
    lr_px = None if hr.pixel_size_nm is None else SCALE * hr.pixel_size_nm
    for key, enhance in (models or {}).items():
        out = np.asarray(enhance(lr.astype(hr.dtype), lr_px), dtype=np.float32)  # as `semzoo enhance` reads a file
        if out.shape != image.shape:
            raise UserError(f"{key} returned {out.shape[1]}x{out.shape[0]} px for an LR of "
                            f"{lr.shape[1]}x{lr.shape[0]}: not a x2 model")
        candidates[key] = out
    scores, aligned = {}, {}
    lines = unscanned_lines_mask(image.shape)
    for key, candidate in candidates.items():
        scores[key], aligned[key] = score(candidate, image, mask, lines)
    sigma, ceiling = noise_ceiling(image, mask)
    result = ImageResult(hr.name, hr.path, image.shape, hr.pixel_size_nm, hr.pixel_size_source,
                         peak, sigma, ceiling, scores)
    _keep_crop(result, image, aligned, [k for k in candidates if k not in BASELINES], crop_px)
    return result


def _keep_crop(result: ImageResult, hr: np.ndarray, aligned: dict, model_keys: list[str], size: int) -> None:
    """The figure's crop: where Lanczos and the best model differ most, else the centre."""
    h, w = hr.shape
    size = min(size, h, w)
    if model_keys:
        best = max(model_keys, key=lambda k: result.scores[k].psnr_db)
        diff = np.abs(aligned[best] - aligned[REFERENCE])
        sums = cv2.integral(diff)  # window sums for every top-left corner, from the integral image
        sums = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
        b = BORDER_PX  # keep the crop off the border, where shifts reflect, when the image allows
        y_lo, x_lo = min(b, h - size), min(b, w - size)
        window = sums[y_lo:max(y_lo, h - size - b) + 1, x_lo:max(x_lo, w - size - b) + 1]
        dy, dx = np.unravel_index(int(np.argmax(window)), window.shape)
        y0, x0 = y_lo + int(dy), x_lo + int(dx)
        result.crop_reason = f"where Lanczos and {best} differ most"
    else:
        y0, x0 = (h - size) // 2, (w - size) // 2
        result.crop_reason = "centre"
    keys = [REFERENCE, *model_keys]
    result.crop = {"hr": hr[y0:y0 + size, x0:x0 + size].copy(),
                   **{k: aligned[k][y0:y0 + size, x0:x0 + size].astype(np.float32) for k in keys}}
    result.crop_box = (int(x0), int(y0), int(size))


# -- models ------------------------------------------------------------------------------------
def resolve_models(zoo_dir: Path, specs: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``{"name:version": (name, version)}`` for NAME / NAME:VERSION / NAME@LABEL; refuses
    unknown models and models whose card's scale is not 2."""
    from zoo.client.files import ModelSpec
    from zoo.registry.store import Zoo

    store = Zoo(zoo_dir)
    found = {}
    for text in specs:
        name, version = store.resolve(str(ModelSpec.parse(text)))
        scale = int(store.card(name, version)["scale"])
        if scale != SCALE:
            raise UserError(f"model {name}:{version} magnifies x{scale}; the HR-only evaluation "
                            f"(LR = every second pixel) scores x{SCALE} models only")
        found[f"{name}:{version}"] = (name, version)
    return found


@contextlib.contextmanager
def served_models(zoo_dir: Path, models: Mapping[str, tuple[str, int]]) -> Iterator[dict[str, Enhancer]]:
    """Enhancers running each version as `semzoo enhance` does: the zoo's SavedModel in an
    in-process server, called through :class:`~zoo.client.client.EnhanceClient`."""
    if not models:
        yield {}
        return
    from zoo.client.client import EnhanceClient
    from zoo.server.server import serve_zoo_versions

    versions: dict[str, list[int]] = {}
    for name, version in models.values():
        versions.setdefault(name, []).append(version)
    server = serve_zoo_versions(zoo_dir, versions)
    clients = []
    try:
        enhancers = {}
        for key, (name, version) in models.items():
            client = EnhanceClient([server.target], name, version=version)
            clients.append(client)
            enhancers[key] = lambda lr, px, client=client: client.enhance(lr, px).image
        yield enhancers
    finally:
        for client in clients:
            client.close()
        server.stop(grace=0)


@dataclass
class HrOnlyPlan:
    """A checked HR-only evaluation, ready to run (:func:`plan_hr_only`, :func:`run_hr_only`)."""

    paths: list[Path]
    names: list[str]
    models: dict[str, tuple[str, int]]
    zoo_dir: Path
    report: Path
    pixel_size_nm: float | None
    overwrite: bool
    inputs: dict
    notes: list[str]


def plan_hr_only(hr_paths: Sequence[Path], model_specs: Sequence[str], zoo_dir: Path, report: Path, *,
                 pixel_size_nm: float | None = None, overwrite: bool = False) -> HrOnlyPlan:
    """Every check before any work, so a refusal (UserError) writes nothing: an existing
    non-empty report without ``overwrite``, no image, an unreadable image or one under 32x32,
    an unknown model or one whose scale is not 2."""
    from zoo.evaluation.real_image_report import check_report_dir

    check_report_dir(report, overwrite)
    paths = find_hr_images(hr_paths)
    names = unique_names(paths)
    notes: list[str] = []
    for path, name in zip(paths, names):  # read once now, again one at a time in the run
        notes += [f"{path.name}: {w}" for w in read_hr(path, pixel_size_nm, name).warnings]
    models = resolve_models(zoo_dir, model_specs)
    inputs = {"hr_only": [str(p) for p in hr_paths], "models": list(model_specs),
              "zoo": str(zoo_dir) if models else None, "pixel_size_nm": pixel_size_nm}
    return HrOnlyPlan(paths, names, models, Path(zoo_dir), Path(report), pixel_size_nm, overwrite, inputs, notes)


def run_hr_only(plan: HrOnlyPlan, progress: Callable[[int, int], None] | None = None
                ) -> tuple[list[ImageResult], dict]:
    """Score every image of the plan, write the report; returns the results and results.json."""
    from zoo.evaluation.real_image_report import results_json, write_report

    results = []
    total = len(plan.paths)
    said: dict[str, list[str]] = {}  # a model's warning -> the images it was given for
    with served_models(plan.zoo_dir, plan.models) as enhancers:
        for k, (path, name) in enumerate(zip(plan.paths, plan.names)):
            if progress:
                progress(k, total)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results.append(evaluate_image(read_hr(path, plan.pixel_size_nm, name), enhancers))
            for w in caught:
                if issubclass(w.category, UserWarning):
                    said.setdefault(str(w.message), []).append(name)
        if progress:
            progress(total, total)
    notes = plan.notes + [f"{message} (the LR of {', '.join(dict.fromkeys(names))})"
                          for message, names in said.items()]
    data = results_json(results, plan.inputs, list(plan.models), notes)
    write_report(results, data, plan.report, overwrite=plan.overwrite)
    return results, data
