"""Merge simulated data sets (``semzoo simulate`` outputs) into one RAW folder for ``semzoo prepare``.

Usage: python tools/merge_simulated_sets.py OUT PREFIX=SET [PREFIX=SET ...]

Each SET's lr/ and hr/ TIFFs are copied to OUT/lr and OUT/hr as PREFIX-NAME.tif and its
truth.json pairs are merged under the same names, so ``semzoo prepare OUT`` keeps the truth
(evaluation tables, the gap/contact masks of the gap-weighted loss). The sets must share the
sample and pixel sizes; each pair keeps its set's preset, seed and probe. OUT must not exist.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from zoo.atomic import atomic_dir
from zoo.sim.truth import TRUTH_FILE, read_truth, with_file_probe

_SHARED = ("sample", "lr_pixel_size_nm", "hr_pixel_size_nm", "scale")


def merge(out: Path, sets: list[tuple[str, Path]]) -> dict:
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new folder")
    truths = [(prefix, path, read_truth(path / TRUTH_FILE)) for prefix, path in sets]
    first = truths[0][2]
    for prefix, path, truth in truths[1:]:
        differ = [k for k in _SHARED if truth.get(k) != first.get(k)]
        if differ:
            raise SystemExit(f"{path}: {', '.join(differ)} differ from {truths[0][1]}")
    merged = {k: v for k, v in first.items() if k not in ("pairs", "seed", "preset")}
    merged["merged_from"] = []
    merged["pairs"] = {}
    with atomic_dir(out, prefix=f".{out.name}.partial-") as tmp:  # no half-merged OUT on an error
        for sub in ("lr", "hr"):
            (tmp / sub).mkdir()
        for prefix, path, truth in truths:
            merged["merged_from"].append({"prefix": prefix, "path": str(path.resolve()),
                                          "seed": truth.get("seed"), "preset": truth.get("preset")})
            truth = with_file_probe(truth)
            for name, pair in truth["pairs"].items():
                new = f"{prefix}-{name}"
                for sub in ("lr", "hr"):
                    shutil.copy2(path / sub / f"{name}.tif", tmp / sub / f"{new}.tif")
                merged["pairs"][new] = {**pair, "name": new, "set_seed": truth.get("seed"),
                                        "preset": pair.get("preset", truth.get("preset"))}
        (tmp / TRUTH_FILE).write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    sets = [(a.split("=", 1)[0], Path(a.split("=", 1)[1])) for a in argv[1:]]
    merged = merge(Path(argv[0]), sets)
    print(f"{argv[0]}: {len(merged['pairs'])} pairs from {len(sets)} sets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
