"""`semzoo train`: train the SRGAN on a prepared data set into a run directory."""

from __future__ import annotations

import contextlib
import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import SeedOption, ZooOption, default_zoo, echo_devices, progress_bar


class Preset(str, enum.Enum):
    small = "small"
    paper = "paper"
    tiny = "tiny"


def _describe(step: int, logs: dict) -> str:
    parts = [f"step {step}"]
    for key, label in (("g_loss", "G"), ("d_loss", "D"), ("l1", "L1"), ("share_adversarial", "adv%")):
        if key in logs:
            value = logs[key] * 100 if key.startswith("share") else logs[key]
            parts.append(f"{label} {value:.3g}")
    return "training  " + "  ".join(parts)


def train(
    data: Annotated[Path, typer.Argument(help="Data set made by `semzoo prepare` (manifest.json + shards).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create (or to continue "
                                                          "with --resume).")],
    sample_type: Annotated[Optional[str], typer.Option("--sample-type", help="Sample type, e.g. "
                                                       "gold-on-carbon; must match the data set's.")] = None,
    preset: Annotated[Preset, typer.Option("--preset", help="Network size and schedule: small (CPU), "
                                           "paper (GPU, 48,000 steps), tiny (tests).")] = Preset.small,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Total generator steps "
                                                 "(default: the preset's; with --resume, may extend).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its "
                                         "latest checkpoint.")] = False,
    seed: SeedOption = 0,
    init_from: Annotated[Optional[str], typer.Option(
        "--init-from", metavar="NAME[:VERSION|@LABEL]",
        help="Start the generator from this zoo model instead of random weights (the "
             "discriminator starts fresh and warms up first); its card becomes the parent.")] = None,
    zoo: ZooOption = None,
    settings: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Change one training setting of the preset (repeatable), e.g. --set beta=1.0 "
             "--set lr_schedule=cosine; with --resume, e.g. a lower g_learning_rate. All "
             "settings land in RUN/config.json.")] = None,
) -> None:
    """Train the super-resolution GAN (U-Net generator + discriminator) on prepared patches."""
    import keras

    from zoo.errors import UserError
    from zoo.nets.presets import TrainingConfig
    from zoo.training.train import TrainingInterrupted, initial_generator, train as train_run

    overrides = TrainingConfig.parse_settings(settings or [])
    init = None
    if init_from is not None:
        if resume:
            raise UserError("--init-from starts a new run; a resumed run already has its weights")
        from zoo.data.patches import load_manifest

        manifest = load_manifest(data)
        # A data set spanning magnifications (HR-only, for a `general` model) has no one pixel
        # size to hold the parent to; its weights are only a starting point there.
        spans = manifest.get("lr_pixel_size_range_nm")
        mixed = bool(spans) and spans[1] > spans[0] * 1.02
        init = initial_generator(zoo or default_zoo(), init_from, preset=preset.value,
                                 lr_pixel_size_nm=None if mixed else manifest.get("lr_pixel_size_nm"))

    with contextlib.ExitStack() as stack:
        bar = []

        def update(done, total=None, description=None):
            # The bar starts with the first step, so refusals (existing run, bad data) print none.
            if not bar:
                echo_devices()
                bar.append(stack.enter_context(progress_bar("training", total=total)))
            bar[0](done, total=total, description=description)

        def show(step, logs):
            update(step, description=_describe(step, logs or {}))

        try:
            run = train_run(
                data, out, sample_type=sample_type, preset=preset.value, steps=steps, resume=resume,
                seed=seed, progress=lambda done, total: update(done, total=total),
                callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=show)],
                init_from=init, overrides=overrides or None,
            )
        except TrainingInterrupted as stop:
            stack.close()
            typer.echo(f"interrupted at step {stop.step}; checkpoint saved. Continue with: "
                       f"semzoo train {data} --out {out} --resume", err=True)
            raise typer.Exit(130) from None
    history = run.history
    summary = [f"{out}: {history.get('steps_done', 0)} generator steps"]
    for key in ("val_l1", "val_psnr", "val_ssim"):
        if history.get(key):
            summary.append(f"{key[4:]} {history[key][-1]:.4g}")
    typer.echo(", ".join(summary))
    typer.echo(f"generator (EMA weights): {Path(out) / 'generator.keras'}")
    saturated = history.get("discriminator_saturated_at")
    if saturated:
        typer.echo(f"warning: the discriminator was saturated (D(real) and D(fake) both near 0 or 1) in "
                   f"{len(saturated)} of {len(history.get('step', []))} epochs, first at step {saturated[0]}: "
                   "the adversarial term gave the generator no gradient there; "
                   "try a lower --set d_learning_rate or beta", err=True)


def register(app: typer.Typer) -> None:
    """Add `train` to the root app."""
    app.command("train")(train)
