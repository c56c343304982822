"""Options shared by several commands, defined once, and the progress bar all commands use."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer

from zoo.client.tiling import DEFAULT_MEMORY_BUDGET_MB  # numpy only: the CLI stays quick to start

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Running from a source checkout (an editable install): models/ beside zoo/ and pyproject.toml.
REPO_MODELS = PACKAGE_DIR.parent / "models"
# An installed wheel carries a copy of models/ inside the package (setup.py's build_py).
BUNDLED_MODELS = PACKAGE_DIR / "bundled_models"


def default_zoo() -> Path:
    """The zoo used when no ``--zoo`` is given.

    $SEMZOO_ZOO when set; else, running from a source checkout, the repository's models/; else
    the bundled models an installed package ships (``zoo/bundled_models/``, a copy of models/
    made when the wheel was built). That copy lives in site-packages and is replaced on every
    upgrade: publish or fine-tune into a zoo of your own (``--zoo DIR`` or $SEMZOO_ZOO).
    """
    if os.environ.get("SEMZOO_ZOO"):
        return Path(os.environ["SEMZOO_ZOO"])
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file() and REPO_MODELS.is_dir():
        return REPO_MODELS
    return BUNDLED_MODELS


ZooOption = Annotated[
    Optional[Path],
    typer.Option("--zoo", help="Model zoo directory (default: $SEMZOO_ZOO, else the checkout's models/, "
                               "else the models bundled with the installed package)."),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace output files that already exist.")
]
PixelSizeOption = Annotated[
    Optional[float],
    typer.Option("--pixel-size", min=0.0, help="Pixel size in nm; overrides the file's metadata."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed (results are deterministic per seed).")]

# `semzoo enhance` and `semzoo watch`: how an image is enhanced.
ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", help="NAME, NAME:VERSION or NAME@LABEL (default: the model matching each image's pixel size)."),
]
ServerOption = Annotated[
    Optional[str],
    typer.Option("--server", help="HOST:PORT of TF Serving / `semzoo serve`; comma-separate replicas. Default: serve the zoo in-process."),
]
CompareOption = Annotated[
    bool, typer.Option("--compare", help="Also write NAME.compare.png: the field beside its consistency map, "
                                  "crops of Lanczos x2 and output where they differ most, line profiles across gaps.")
]
TileSizeOption = Annotated[
    Optional[int],
    typer.Option("--tile-size", min=8, help="A fixed LR tile edge in px (never below the model card's tile). "
                                            "Default: from --memory-budget."),
]
MemoryBudgetOption = Annotated[
    float,
    typer.Option("--memory-budget", min=1, help="Server memory (MiB) one image may take: the whole image goes as one "
                                                "request when it fits, else the largest tiles that fit. Tiled equals "
                                                "untiled; lower it for a small GPU, raise it for a big server."),
]
StrictOption = Annotated[
    bool,
    typer.Option("--strict", help="Refuse images whose pixel size is >10% off the model's, and do not write "
                                  "an output the consistency check flags."),
]
ConsistentOption = Annotated[
    bool,
    typer.Option("--consistent", help="Correct each output by back-projection so that, re-acquired onto the "
                                      "input's grid, it agrees with the input within its noise."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]

ProgressCallback = Callable[[int, int], None]


def device_summary() -> str:
    """The devices TensorFlow computes on, e.g. ``CPU:0, GPU:0 (NVIDIA H200)``."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices():
        name = device.name.removeprefix("/physical_device:")
        if device.device_type == "GPU":
            try:
                model = tf.config.experimental.get_device_details(device).get("device_name")
            except (RuntimeError, ValueError):  # details are best effort
                model = None
            name += f" ({model})" if model else ""
        names.append(name)
    return ", ".join(names) or "none"


def echo_devices() -> None:
    """One line on stderr, ``devices: ...``: what a long computation (train, bench) runs on."""
    typer.echo(f"devices: {device_summary()}", err=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A rich progress bar with ETA; yields ``update(done, total=None, description=None)``.

    Library functions take a plain ``progress(done, total)`` callback; pass this one. The bar
    is drawn on stderr, so a command's stdout (a table, or ``--json``) stays clean for pipes.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=False,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int | None = None, description: str | None = None) -> None:
            kwargs = {"completed": done}
            if total is not None:
                kwargs["total"] = total
            if description is not None:
                kwargs["description"] = description
            bar.update(task, **kwargs)

        yield update
