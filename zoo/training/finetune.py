"""Transfer learning from a zoo model to a new sample on a few calibration pairs (``semzoo finetune``).

de Haan et al., Sci. Rep. 9, 12050 (2019), Discussion: a network trained on one sample type
adapts to another by transfer learning on a few calibration images. :func:`finetune`:

1. resolves the parent (``NAME[:VERSION|@LABEL]``) in the zoo and refuses what cannot work: an
   unknown parent, a NEW name whose versions descend from another model, calibration pairs whose
   LR/HR pixel-size ratio is not the parent's magnification factor, pairs that fail registration;
2. registers and cuts the pairs with ``prepare``'s pipeline, overlapping patches, augmented with
   rotations/flips (:mod:`zoo.data.patches`) and a small shared gain/offset jitter
   (:mod:`zoo.training.calibration`);
3. for each held-out fold (one pair held out; leave-one-out with 2-3 pairs; a region with one),
   fine-tunes a copy of the parent with :func:`zoo.training.train.train`: the parent's generator
   weights, the encoder (input block + down-sampling path) frozen unless ``freeze="none"``, a
   learning rate :data:`LR_FACTOR` of the preset's, and a fresh discriminator (the zoo keeps only
   generators) warmed up alone for :func:`warmup_steps` steps before the generator moves; the
   exported EMA generator is validated on the held-out patches every ``validate_every`` steps and
   training stops when the validation L1 has not improved for :data:`PATIENCE` validations; the
   best EMA weights are kept (validation at step 0 is the parent itself);
4. measures Lanczos vs parent vs fine-tuned on the held-out image(s): PSNR and SSIM after
   least-squares intensity matching, gap statistics where truth.json knows the particles
   (:mod:`zoo.evaluation`);
5. publishes a new version of NAME whose card records the parent ``name:version``, the
   calibration set's sha256 and the before/after table.

Which model is published: with 4 or more pairs, the fold's model (it never saw the held-out
pair, so the table measures exactly what is published). With 1-3 pairs the fold models are only
used to measure: the published model is trained on every pair (the whole image with one pair) for
the mean of the folds' best step counts, without validation; the table then estimates how that
procedure does on unseen images (cross-validation), as no unseen image remains.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.errors import UserError
from zoo.evaluation.tables import json_number, json_table
from zoo.training import calibration as C
from zoo.training.finetune_metrics import compare, pool
from zoo.training.finetune_run import (
    PATIENCE,
    REGISTRATION_UNITS,
    Meter,
    check_settings,
    parent_generator,
    train_from_parent,
    warmup_steps,
)

__all__ = ["FinetuneResult", "FoldResult", "check_lineage", "finetune", "self_calibrated_card"]

ProgressCallback = Callable[[int, int], None]

FREEZE_CHOICES = ("encoder", "none")
DEFAULT_STEPS = {"small": 400, "paper": 1000, "tiny": 16}


@dataclass
class FoldResult:
    """One held-out fold: what trained, when it was best, and the before/after table."""

    name: str
    train: list[str]
    held_out: list[str]
    best_step: int
    steps_run: int
    best_val_l1: float
    parent_val_l1: float
    table: dict[str, dict[str, float]]
    gaps: dict[str, Any] = field(default_factory=dict)  # row -> zoo.evaluation.gaps.GapStats
    val_history: list[tuple[int, float]] = field(default_factory=list)  # (step, validation L1)

    def to_dict(self) -> dict:
        out = {"name": self.name, "train": self.train, "held_out": self.held_out,
               "best_step": self.best_step, "steps_run": self.steps_run,
               "val_l1": {"parent": json_number(self.parent_val_l1), "finetuned": json_number(self.best_val_l1)},
               "table": json_table(self.table),
               "val_l1_by_step": [[step, json_number(v)] for step, v in self.val_history]}
        if self.gaps:
            out["gaps"] = {row: stats.to_dict() for row, stats in self.gaps.items()}
        return out


def never_beat_message(parent_ref: str, fold: FoldResult, steps: int) -> str:
    """The one-line refusal when no validation beat the parent, with what the validations saw."""
    seen = ", ".join(f"{v:.4f} at {s}" for s, v in fold.val_history[:4])
    seen += ", ..." if len(fold.val_history) > 4 else ""
    first = fold.val_history[0][0] if fold.val_history else steps
    return (f"fine-tuning never beat the parent {parent_ref} on the held-out data (validation L1 "
            f"{fold.parent_val_l1:.4f}; fine-tuned {seen or 'never validated'}); nothing published. "
            f"The first validation came at step {first}: with few images the gain is often made "
            f"before it, so try fewer --steps (they validate more often, every tenth), "
            "--freeze none or more calibration images")


@dataclass
class FinetuneResult:
    """What :func:`finetune` published and measured."""

    name: str
    version: int
    parent: str
    card: dict
    folds: list[FoldResult]
    table: dict[str, dict[str, float]]
    steps: int
    calibration_sha256: str
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def psnr_gain_db(self) -> float:
        """Fine-tuned minus parent PSNR on the held-out image(s)."""
        return self.table["finetuned"]["psnr_db"] - self.table["parent"]["psnr_db"]


def _lineage_root(zoo, name: str, version: int) -> str:
    """The model a version descends from: follow card ``parent`` links to the first without one."""
    seen = set()
    while (name, version) not in seen:
        seen.add((name, version))
        try:
            parent = zoo.card(name, version)["parent"]
        except UserError:  # an ancestor deleted from the zoo: the chain ends here
            return name
        if not parent:
            return name
        name, _, text = parent.partition(":")
        version = int(text)
    return name


def check_lineage(zoo, new_name: str, parent: tuple[str, int]) -> None:
    """UserError when NEW exists and its versions descend from another model than the parent."""
    if new_name not in zoo.models():
        return
    latest = zoo.latest(new_name)
    theirs = _lineage_root(zoo, new_name, latest)
    ours = _lineage_root(zoo, *parent)
    if theirs != ours:
        raise UserError(
            f"model {new_name!r} already exists and descends from {theirs!r}; a fine-tune of "
            f"{parent[0]}:{parent[1]} (from {ours!r}) would mix lineages: choose another --name")


def finetune(
    calib_dir: str | Path,
    *,
    parent: str,
    name: str,
    zoo_root: str | Path,
    steps: int | None = None,
    freeze: str = "encoder",
    label: str | None = None,
    pixel_size_nm: float | None = None,
    hr_pixel_size_nm: float | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    noise_split: bool = True,
    settings: Mapping[str, Any] | None = None,
    self_calibration: bool = False,
) -> FinetuneResult:
    """Fine-tune ``parent`` on the calibration pairs in ``calib_dir``; publish version N of ``name``.

    Parameters
    ----------
    calib_dir : path
        CALIB/lr and CALIB/hr with 1-10 TIFF pairs matched by name (pixel sizes in the metadata,
        or ``pixel_size_nm``/``hr_pixel_size_nm``); a truth.json beside them (``semzoo simulate``)
        adds gap statistics. Or CALIB/hr alone (HR-only): the LR side is recorded from each
        image by the acquisition model (:mod:`zoo.data.hr_only`); ``pixel_size_nm`` is then the
        HR images' pixel size when their metadata has none.
    parent : str
        ``NAME``, ``NAME:VERSION`` or ``NAME@LABEL`` in the zoo.
    name : str
        The model to publish a new version of; if it exists it must share the parent's lineage.
    zoo_root : path
        The zoo (parent's and new model's).
    steps : int, optional
        Most generator steps per training (early stopping usually ends sooner); default by preset
        (:data:`DEFAULT_STEPS`).
    freeze : "encoder" | "none"
        Keep the U-Net's input block and contracting path fixed (fewer weights to fit to few
        images), or fine-tune every weight.
    label : str, optional
        Label to put on the new version (e.g. ``canary``).
    seed : int
        Seeds the held-out choice, data order, augmentation and training.
    progress : callable(done, total), optional
    noise_split : bool
        HR-only: split each HR's noise between input and target (:func:`zoo.sim.acquisition.split_noise`),
        so the network cannot learn to copy the input's noise into the target; off for an ablation.
    settings : mapping, optional
        Training settings to change (``semzoo finetune --set``, typed by
        :meth:`zoo.nets.presets.TrainingConfig.parse_settings`), e.g. ``{"beta": 0.05}``; they
        win over the fine-tune's own (a ``g_learning_rate`` replaces the halved preset rate).
        The generator's shape and the validation schedule cannot change
        (:func:`zoo.training.finetune_run.check_settings`).
    self_calibration : bool
        CALIB/hr holds the very images to enhance (fast scans of a specimen no finer image of
        which exists): the network learns to restore each image from its own record at
        ``scale`` times the pitch, and the published model is for the images' own pixel size
        (:func:`self_calibrated_card`). Needs CALIB/hr alone.

    Returns
    -------
    FinetuneResult
        Version published, per-fold and pooled Lanczos/parent/fine-tuned tables, wall and CPU time.
    """
    from zoo.data.hr_only import hr_images
    from zoo.data.prepare import is_hr_only, match_pairs
    from zoo.registry.card import check_name
    from zoo.registry.store import Zoo, check_label

    started, cpu0 = time.monotonic(), C.cpu_seconds()
    check_name(name)
    if label is not None:
        check_label(label)
    if freeze not in FREEZE_CHOICES:
        raise UserError(f"--freeze must be one of {', '.join(FREEZE_CHOICES)}, got {freeze!r}")
    if steps is not None and (isinstance(steps, bool) or int(steps) < 1):
        raise UserError(f"--steps must be a positive integer, got {steps!r}")
    zoo = Zoo(zoo_root)
    parent_name, parent_version = zoo.resolve(parent)
    parent_ref = f"{parent_name}:{parent_version}"
    parent_card = zoo.card(parent_name, parent_version)
    check_lineage(zoo, name, (parent_name, parent_version))
    preset = _parent_preset(parent_card, parent_ref)
    settings = check_settings(settings or {}, preset)
    steps = int(steps or DEFAULT_STEPS.get(preset.name, 300))

    calib_dir = Path(calib_dir)
    hr_only = calib_dir.is_dir() and is_hr_only(calib_dir)
    if self_calibration and not hr_only:
        raise UserError(f"{calib_dir}: --self learns from the images to enhance alone: put them in "
                        f"{calib_dir / 'hr'} (no lr/ folder)")
    if hr_only:  # the LR side is made by the acquisition model (zoo.data.hr_only)
        pairs, unmatched = [(p.stem, None, p) for p in hr_images(calib_dir)], []
    else:
        pairs, unmatched = match_pairs(calib_dir)
    if not pairs:
        raise UserError(f"{calib_dir}: no calibration images (hr/*.tif alone, or TIFF pairs with the same "
                        "name in lr/ and hr/)")
    if len(pairs) > C.MAX_PAIRS:
        raise UserError(f"{calib_dir}: {len(pairs)} pairs; fine-tuning takes 1-{C.MAX_PAIRS} calibration "
                        "pairs (train a model with `semzoo prepare` + `semzoo train` for more)")
    if hr_only:
        _, warnings = C.check_hr_only_against_parent(pairs, parent_card, parent_ref, hr_pixel_size_nm or pixel_size_nm,
                                                      self_calibration=self_calibration)
    else:
        _, warnings = C.check_pixel_sizes_against_parent(pairs, parent_card, parent_ref, pixel_size_nm,
                                                         hr_pixel_size_nm)
    warnings += [f"no partner for {p} (pairs are matched by file name)" for p in unmatched]
    calib_hash = C.calibration_hash(pairs, pixel_size_nm, hr_pixel_size_nm)

    n_folds = len(pairs) if 2 <= len(pairs) <= C.LEAVE_ONE_OUT_MAX_PAIRS else 1
    retrain = len(pairs) <= C.LEAVE_ONE_OUT_MAX_PAIRS
    meter = Meter(progress, REGISTRATION_UNITS * len(pairs) + (n_folds + retrain) * steps)
    work = Path(tempfile.mkdtemp(prefix="semzoo-finetune-"))
    try:
        data_dir = work / "data"
        prepared = C.prepare_calibration(
            calib_dir, data_dir, patch_size=preset.patch_size, lr_pixel_size_nm=pixel_size_nm,
            hr_pixel_size_nm=hr_pixel_size_nm, seed=seed, noise_split=noise_split,
            progress=lambda done, total: meter.at(REGISTRATION_UNITS * done))
        manifest = prepared.manifest
        version_dir = zoo.version_dir(parent_name, parent_version)
        parent_gen = parent_generator(preset, version_dir)
        parent_weights = parent_gen.get_weights()
        fold_results, last_run = [], None
        warmup = warmup_steps(steps)  # the same D warm-up for the folds and the final run
        for k, fold in enumerate(C.folds(data_dir, work / "folds", seed=seed)):
            run, stopper = train_from_parent(
                fold.data_dir, work / f"run-{k}", preset, steps, freeze, seed, parent_weights,
                manifest.get("sample_type"), fold.val_patches, meter, warmup, settings)
            generator = run.generator
            generator.set_weights(stopper.best_weights)
            tables, gaps = zip(*(compare(pair, parent_gen, generator) for pair in fold.evaluation))
            fold_table, fold_gaps = pool(list(tables), list(gaps))
            fold_results.append(FoldResult(
                fold.name, fold.train, fold.held_out, stopper.best_step,
                int(run.steps_done), stopper.best, stopper.parent_l1,
                fold_table, fold_gaps, list(stopper.history)))
            last_run = run
        best = [f.best_step for f in fold_results]
        if not any(best):
            raise UserError(never_beat_message(parent_ref, fold_results[0], steps))
        if retrain:
            final_steps = max(1, round(sum(best) / len(best)))
            meter.total = meter.done + final_steps
            final_dir = C.all_pairs_dir(data_dir, work / "folds")
            last_run, _ = train_from_parent(
                final_dir, work / "run-all", preset, final_steps, freeze, seed, parent_weights,
                manifest.get("sample_type"), None, meter, warmup, settings)
            generator, trained_on = last_run.generator, [p["name"] for p in manifest["pairs"]]
        else:
            final_steps, trained_on = best[0], fold_results[0].train
        table, _ = pool([f.table for f in fold_results], [f.gaps for f in fold_results])
        card = _card(last_run, name, parent_ref, manifest, calib_hash, fold_results, table, final_steps,
                     trained_on, freeze, retrain, preset, steps, settings)
        if self_calibration:
            card = self_calibrated_card(card)
        from zoo.registry.publish import publish_generator

        new_name, version = publish_generator(generator, card, zoo.root, label=label)
        meter.finish()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return FinetuneResult(new_name, version, parent_ref, card, fold_results, table, final_steps, calib_hash,
                          warnings, time.monotonic() - started, C.cpu_seconds() - cpu0)


def self_calibrated_card(card: Mapping[str, Any]) -> dict:
    """The card of a self-calibrated fine-tune, for the calibration images' own pixel size.

    Zero-shot internal learning (Shocher, Cohen & Irani, "Zero-Shot Super-Resolution using Deep
    Internal Learning", CVPR 2018): the network was trained to restore images at pixel size P
    from their records at ``scale`` x P, and is applied to the images at P themselves. It
    relies on the specimen's and the detector's statistics being similar across one factor of
    ``scale``; the card's held-out table measures the trained scale (``scale`` x P -> P), the
    only one with a truth.
    """
    card = json.loads(json.dumps(card))
    scale = int(card["scale"])
    trained = float(card["input_pixel_size_nm"])
    card["input_pixel_size_nm"] = trained / scale
    card["output_pixel_size_nm"] = trained / scale**2
    card["training"]["calibration"]["self"] = {
        "trained_input_pixel_size_nm": trained,
        "method": f"trained on the calibration images' own records at {scale}x their pitch "
                  f"({trained:g} -> {trained / scale:g} nm); published for the images' own pixel size "
                  f"({trained / scale:g} nm), assuming their statistics hold across one factor of {scale}",
    }
    return card


def _parent_preset(card: Mapping[str, Any], parent_ref: str):
    from zoo.nets.presets import get_preset

    preset = card["training"].get("preset")
    try:
        return get_preset(preset)
    except UserError:
        raise UserError(f"the parent {parent_ref} was not trained with a known preset ({preset!r}): "
                        "its architecture cannot be rebuilt for fine-tuning") from None


def _card(run, name, parent_ref, manifest, calib_hash, folds, table, final_steps, trained_on, freeze,
          retrain, preset, steps, settings) -> dict:
    from zoo.nets.generator import DIVISOR, receptive_field_radius_lr
    from zoo.registry.export import tile_geometry
    from zoo.training.publish import card_from_run

    card = dict(card_from_run(
        run, name=name, parent=parent_ref,
        tile=tile_geometry(run.generator, divisor=DIVISOR, radius=receptive_field_radius_lr(preset)),
        evaluation={
            "held_out": sorted({h for f in folds for h in f.held_out}),
            "method": ("leave-one-out over pairs; the published model is retrained on every pair"
                       if retrain and len(folds) > 1 else
                       "one region held out; the published model is retrained on the whole pair"
                       if retrain else "one pair held out; the published model never saw it"),
            "table": json_table(table),
            "folds": [f.to_dict() for f in folds],
            "summary": {
                "psnr_db": json_number(table["finetuned"]["psnr_db"]),
                "psnr_gain_over_parent_db": json_number(table["finetuned"]["psnr_db"] - table["parent"]["psnr_db"]),
                "ssim": json_number(table["finetuned"]["ssim"]),
            },
        },
    ))
    training = dict(card["training"])
    training.update(
        pairs=len(trained_on),
        steps=int(final_steps),
        calibration={
            "sha256": calib_hash,
            "pairs": [p["name"] for p in manifest["pairs"]],
            "trained_on": trained_on,
            "source": manifest.get("raw_dir"),
            "freeze": freeze,
            "max_steps": int(steps),
            "g_learning_rate": float(run.config["training"]["g_learning_rate"]),  # LR_FACTOR's, or --set's
            "settings": dict(sorted(settings.items())),  # tuples become lists in the JSON round trip below
            "discriminator": f"fresh, warmed up alone for {warmup_steps(steps)} steps",
            "early_stopping": f"validation L1 of the EMA generator, patience {PATIENCE}",
        },
    )
    card["training"] = training
    return json.loads(json.dumps(card))
