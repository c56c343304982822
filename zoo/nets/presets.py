"""Training configurations: the paper's, one this CPU can afford, and a tiny one for tests.

de Haan et al., Sci. Rep. 9, 12050 (2019), Methods: U-Net generator 32 -> 512 channels, VGG-style
discriminator, Adam, 48,000 generator iterations, discriminator updated once per 4 generator
iterations, loss weights chosen so the adversarial term is ~84% of the generator loss, L1 ~14%
and total variation ~2%.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from zoo.errors import UserError
from zoo.settings import split_setting


LR_SCHEDULES = ("constant", "cosine")
D_HEADS = ("global", "patch")
PIXEL_LOSSES = ("l1", "mse")


@dataclass(frozen=True)
class TrainingConfig:
    """Every hyperparameter of a training run (written to the run's config.json).

    Widths: ``g_widths`` are the generator's channels at U-Net levels 0..4 (full HR grid down to
    1/16); ``d_widths`` the discriminator's per stride-2 block; ``d_dense`` its hidden dense width.
    Steps count generator updates (paper: 48,000); the discriminator is updated on every
    ``d_every``-th step. ``alpha`` weights total variation and ``beta`` the adversarial term in
    the generator loss (paper Eq. 1). ``ema_decay`` is the decay of the exponential moving average
    of the generator weights that is exported. Intervals are in generator steps.
    ``lr_schedule`` "constant" keeps both learning rates; "cosine" lowers both along a half
    cosine from their set values at step 0 to ``lr_final_fraction`` of them at ``steps`` (see
    :meth:`learning_rates`; a run extended with ``--resume --steps`` stretches the remaining
    part of the curve). ``lr_warmup_steps`` > 0 multiplies both rates by (step + 1) / warm-up
    over the first steps (the usual remedy for a fresh Adam, whose first updates move every
    weight by about the full rate whatever the gradient). ``d_head`` "global" is the paper's
    discriminator head (pooling, dense); "patch" scores every cell of the last feature map (see
    :mod:`zoo.nets.discriminator`). ``gap_weight`` and ``contact_weight`` > 0 weight the L1 by
    1 + weight on the gap bands and the contact bands of a simulated set's truth
    (:mod:`zoo.data.focus`; the data set must hold them); both 0 is the paper's plain L1.
    ``pixel_loss`` "l1" is the paper's pixel term; "mse" replaces it by the mean squared error
    (same weights), whose minimiser is the conditional mean, the estimate PSNR rewards, where
    L1's is the median; logs and metrics keep the name ``l1`` for the pixel term.
    """

    name: str
    g_widths: tuple[int, ...]
    d_widths: tuple[int, ...]
    d_dense: int
    batch_size: int
    steps: int
    g_learning_rate: float = 1e-4
    d_learning_rate: float = 1e-5
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    alpha: float = 0.08
    beta: float = 6.0
    d_every: int = 4
    ema_decay: float = 0.999
    leaky_slope: float = 0.2
    patch_size: int = 128
    checkpoint_every: int = 500
    validate_every: int = 500
    validation_steps: int = 8
    log_every: int = 20
    keep_checkpoints: int = 3
    mixed_precision: str | None = None  # e.g. "mixed_bfloat16" on hardware that has it
    lr_schedule: str = "constant"  # or "cosine"
    lr_final_fraction: float = 0.1
    lr_warmup_steps: int = 0
    d_head: str = "global"  # the paper's pooled head, or "patch" (one score per cell)
    gap_weight: float = 0.0  # > 0: L1 weighted 1 + gap_weight on the bands of narrow gaps
    contact_weight: float = 0.0  # > 0: L1 weighted 1 + contact_weight on the bands of contacts
    pixel_loss: str = "l1"  # the paper's L1, or "mse" (squared error: the error PSNR scores)

    def __post_init__(self):
        problems = []
        if len(self.g_widths) != 5:
            problems.append(f"g_widths needs 5 levels (4 down, 4 up), got {len(self.g_widths)}")
        if not self.d_widths:
            problems.append("d_widths is empty")
        for key in ("batch_size", "steps", "d_every", "checkpoint_every", "validate_every",
                    "validation_steps", "log_every", "keep_checkpoints", "d_dense"):
            if int(getattr(self, key)) < 1:
                problems.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if int(self.lr_warmup_steps) < 0:
            problems.append(f"lr_warmup_steps must be >= 0, got {self.lr_warmup_steps}")
        if self.pixel_loss not in PIXEL_LOSSES:
            problems.append(f"pixel_loss must be one of {', '.join(PIXEL_LOSSES)}, got {self.pixel_loss!r}")
        if self.d_head not in D_HEADS:
            problems.append(f"d_head must be one of {', '.join(D_HEADS)}, got {self.d_head!r}")
        for key in ("gap_weight", "contact_weight"):
            if not getattr(self, key) >= 0.0:
                problems.append(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 < self.lr_final_fraction <= 1.0:
            problems.append(f"lr_final_fraction must be in (0, 1], got {self.lr_final_fraction}")
        if self.patch_size % 16:
            problems.append(f"patch_size (HR) must be a multiple of 16, got {self.patch_size}")
        if problems:
            raise UserError("invalid training configuration: " + "; ".join(problems))

    def learning_rates(self, step: int) -> tuple[float, float]:
        """(generator, discriminator) learning rates for the 0-based generator step ``step``.

        A function of the step alone, so a resumed run follows the same curve as an
        uninterrupted one.
        """
        factor = 1.0
        if self.lr_schedule == "cosine":
            t = min(max(step, 0) / max(self.steps - 1, 1), 1.0)
            final = self.lr_final_fraction
            factor = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))
        if step < self.lr_warmup_steps:
            factor *= (max(step, 0) + 1) / self.lr_warmup_steps
        return self.g_learning_rate * factor, self.d_learning_rate * factor

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["g_widths"] = list(self.g_widths)
        out["d_widths"] = list(self.d_widths)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        """Inverse of :meth:`to_dict`; unknown keys are a UserError (a config from elsewhere)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown training configuration keys: {', '.join(unknown)}")
        values = dict(data)
        for key in ("g_widths", "d_widths"):
            if key in values:
                values[key] = tuple(int(v) for v in values[key])
        return cls(**values)

    @classmethod
    def parse_settings(cls, settings) -> dict:
        """``["beta=1", "g_widths=16,32,64,96,128", ...]`` -> typed field changes for :meth:`replace`.

        Values take the type of the field (int, float, str, a comma-separated tuple of ints;
        ``none`` clears an optional one). UserError names the first bad setting.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        changes = {}
        for item in settings:
            key, text = split_setting(item, "beta=1.0")
            if key not in fields or key == "name":
                raise UserError(f"unknown training setting {key!r}; settable: "
                                + ", ".join(n for n in fields if n != "name"))
            kind = str(fields[key].type)  # the annotation, e.g. "tuple[int, ...]", "float"
            try:
                if kind.startswith("tuple"):
                    value = tuple(int(v) for v in text.split(","))
                elif "None" in kind:
                    value = None if text.lower() in ("", "none") else text
                elif kind == "int":
                    value = int(text)
                elif kind == "float":
                    value = float(text)
                else:
                    value = text
            except ValueError:
                raise UserError(f"bad value {text!r} for {key} (expected {kind})") from None
            changes[key] = value
        return changes

    def replace(self, **changes) -> "TrainingConfig":
        """A copy with ``changes`` applied (validated like the original)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise UserError(f"unknown training configuration keys: {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, TrainingConfig] = {
    # The paper's networks and schedule (Methods). Needs a GPU: ~48k steps.
    "paper": TrainingConfig(
        name="paper",
        g_widths=(32, 64, 128, 256, 512),
        d_widths=(64, 128, 256, 512, 1024),
        d_dense=1024,
        batch_size=16,
        steps=48_000,
        checkpoint_every=1000,
        validate_every=1000,
        validation_steps=16,
        log_every=50,
    ),
    # Fits a 2-core CPU (see the report for measured speed): same topology, 1/2 to 1/4 width.
    "small": TrainingConfig(
        name="small",
        g_widths=(16, 32, 64, 96, 128),
        d_widths=(16, 32, 64, 128),
        d_dense=128,
        batch_size=8,
        steps=5_000,
        g_learning_rate=2e-4,
        d_learning_rate=2e-5,
        ema_decay=0.999,
        checkpoint_every=250,
        validate_every=250,
        validation_steps=8,
        log_every=10,
    ),
    # Tests only: seconds per run on small synthetic patches.
    "tiny": TrainingConfig(
        name="tiny",
        g_widths=(4, 8, 8, 16, 16),
        d_widths=(4, 8),
        d_dense=8,
        batch_size=4,
        steps=16,
        g_learning_rate=1e-3,
        d_learning_rate=1e-3,
        ema_decay=0.9,
        patch_size=32,
        checkpoint_every=4,
        validate_every=8,
        validation_steps=2,
        log_every=1,
        keep_checkpoints=2,
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> TrainingConfig:
    """The named preset ("paper", "small" or "tiny"); UserError for any other name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
