"""The reference `semzoo enhance FOLDER` is measured against: the SavedModel called directly.

    python tools/direct_enhance.py FOLDER [--zoo models] [--model gold-on-carbon] [--out DIR]

One process: load the zoo version's SavedModel (``tf.saved_model.load``, the
``serving_default`` signature, as the embedded server loads it), then for each SEM TIFF in
FOLDER read it (data bar removed), normalise with the whole image's mean and std, call the
signature once on the whole image and map the output back to the input's scale. No server,
no tiling, no consistency map; ``--out`` also writes each output as a float32 .npy. Process
start and model load are part of what a whole-process timing of this script counts, as they
are for `semzoo enhance`. See docs/performance.md ("The default path").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--zoo", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    ap.add_argument("--model", default="gold-on-carbon")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import tensorflow as tf

    from zoo.data.sem_tiff import read_sem
    from zoo.registry.store import Zoo

    store = Zoo(args.zoo)
    name, version = store.resolve(args.model)
    loaded = tf.saved_model.load(str(store.version_dir(name, version)))
    function = loaded.signatures["serving_default"]
    (output_name,) = function.structured_outputs
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    started = time.perf_counter()
    for path in files:
        image = read_sem(path, 14.2).image
        mean, std = float(image.mean(dtype=np.float64)), float(image.std(dtype=np.float64)) or 1.0
        normalised = ((image.astype(np.float32) - mean) / std)[None, ..., None]
        out = function(image=tf.constant(normalised))[output_name].numpy()[0, ..., 0] * std + mean
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            np.save(args.out / f"{path.stem}.npy", out.astype(np.float32))
    print(f"{name}:{version}: {len(files)} images in {time.perf_counter() - started:.2f} s after loading")


if __name__ == "__main__":
    main()
