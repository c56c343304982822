"""Stage the real micrographs of ../shared/sem-train as HR-only RAW folders for semzoo.

    python tools/stage_real_images.py SEM_TRAIN OUT [FACTOR...]

writes OUT/train/hr/*.tif (the images `general` trains on) and OUT/heldout/hr/*.tif (the
specimen kept out of training to measure it: the GaAs nanomembranes, 6 images), each image
cropped to its scanned field (the data bars and the inset box listed in SEM_TRAIN/README.md
removed) and written with its pixel size, so `semzoo prepare` / `evaluate --hr-only` read it
from the metadata. The source files are never modified or copied into the repository.

Each FACTOR (e.g. 2) adds, for every training image, its magnified view
(``zoo.sim.acquisition.magnified_view``: the field as a scan at FACTOR times the magnification
records it at best, an oversampled image with the detector's white noise per pixel) as
``NAME__xFACTOR.tif`` at pixel size / FACTOR (a field of the original's size cut from it at
random): the training images are 9.8-65 nm/px, and a
general model must also meet high-magnification micrographs whose probe spans several pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from zoo.data.sem_tiff import read_sem, write_sem

HELD_OUT = "deepsem_gaas_nanomembranes_zeiss50k"
# folder -> (rows of the scanned field to keep, pixel size (nm) when the file does not say it).
# From SEM_TRAIN/README.md: Zeiss bars at rows 1370-1535, the nanoBALLS inset box at rows
# 423-462 (21 rows below it are too few for a patch), the FEI bar from row 1024 (read_sem cuts
# it), GaAs at 50 kX on Zeiss = 2.286 um / 1024 px.
CROP_ROWS = {
    "fibresem_zeiss_auriga": (0, 1370),
    "nanoballs_silica_fei_xl": (0, 423),
    "sem2surface_fei_nova_bse": (0, None),
    HELD_OUT: (0, None),
}


# Credits, from SEM_TRAIN/README.md: carried into the data set's manifest and the model card.
SOURCES = {
    "fibresem_zeiss_auriga": {"source": "dvtxc/fibresem @ daab7ca2 : sampledata/", "licence": "MIT",
                              "specimen": "electrospun polymer nanofibres", "microscope": "Zeiss Auriga, SE2, 5 kV"},
    "nanoballs_silica_fei_xl": {"source": "rgebhart/nanoBALLS @ cc587407 : sem_images/SEM_Images_Sized/",
                                "licence": "MIT", "specimen": "aggregated silica nanoparticles",
                                "microscope": "FEI/Philips XL, 5 kV"},
    "sem2surface_fei_nova_bse": {"source": "vyastreb/sem2surface @ 4b3d15f1 : examples/Surface_2/",
                                 "licence": "BSD-3-Clause", "specimen": "faceted polycrystalline metal surface",
                                 "microscope": "FEI Nova NanoSEM 450, BSE, 7 kV"},
    HELD_OUT: {"source": "Martin09/DeepSEM @ 8af6eb69 : segmentation-NMs/datasets/Nick_NMs_50kmag_png.zip",
               "licence": "MIT", "specimen": "GaAs nanomembranes in SiO2 trenches on Si",
               "microscope": "Zeiss, 50 kX"},
}


# The simulated HR images retrain_bundled.sh adds beside the real ones.
SIMULATED = [
    {"images": "sim-gold__*", "source": "semzoo simulate --sample gold-on-carbon --pairs 2 --seed 3000 (HR side)",
     "licence": "this project's", "specimen": "simulated gold nanoparticles on carbon"},
    {"images": "sim-hydrogel__*", "source": "semzoo simulate --sample hydrogel --pairs 2 --seed 4000 (HR side)",
     "licence": "this project's", "specimen": "simulated hydrogel"},
]


def pixel_size(folder: str, path: Path, from_file: float | None) -> float:
    if from_file:
        return from_file
    if folder == "nanoballs_silica_fei_xl":
        return 12.74 if path.stem.endswith("35000") else 18.02
    if folder == HELD_OUT:
        return 2286.0 / 1024
    raise SystemExit(f"{path}: no pixel size known")


def read_any(path: Path):
    if path.suffix.lower() == ".png":
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return image, None
    sem = read_sem(path)
    return sem.image, sem.pixel_size_nm


def main(src: Path, out: Path, factors: list[float] = ()) -> None:
    import json

    from zoo.sim.acquisition import magnified_view

    for split in ("train", "heldout"):
        (out / split).mkdir(parents=True, exist_ok=True)
        chosen = [f for f in CROP_ROWS if (f == HELD_OUT) == (split == "heldout")]
        (out / split / "sources.json").write_text(json.dumps(
            [{"images": f"{f}__*", **SOURCES[f]} for f in chosen] + (SIMULATED if split == "train" else []),
            indent=1) + "\n")
    for folder, (top, bottom) in CROP_ROWS.items():
        split = "heldout" if folder == HELD_OUT else "train"
        target = out / split / "hr"
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted((src / folder).iterdir()):
            if path.suffix.lower() not in (".tif", ".png"):
                continue
            image, size = read_any(path)
            image = np.ascontiguousarray(image[top:bottom])
            name = f"{folder}__{path.stem.replace(' ', '_')}.tif"
            write_sem(target / name, image, pixel_size(folder, path, size),
                      {"source": str(path), "staged_by": "tools/stage_real_images.py", "rows": [top, bottom]})
            print(f"{split}: {name} {image.shape[1]}x{image.shape[0]} {pixel_size(folder, path, size):.4g} nm")
            for k, factor in enumerate(factors if split == "train" else ()):
                rng = np.random.default_rng([k, len(name), sum(map(ord, name))])
                view = magnified_view(image.astype(np.float32), factor, rng)
                # A field of the original's size at a random place: the view weighs as much as
                # its source in training, not factor^2 times more.
                y0 = int(rng.integers(view.shape[0] - image.shape[0] + 1))
                x0 = int(rng.integers(view.shape[1] - image.shape[1] + 1))
                view = np.ascontiguousarray(view[y0:y0 + image.shape[0], x0:x0 + image.shape[1]])
                view_name = f"{name[:-4]}__x{factor:g}.tif"
                write_sem(target / view_name, view, pixel_size(folder, path, size) / factor,
                          {"source": str(path), "staged_by": "tools/stage_real_images.py", "rows": [top, bottom],
                           "magnified_view": factor})
                print(f"{split}: {view_name} {view.shape[1]}x{view.shape[0]} (magnified view)")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), [float(f) for f in sys.argv[3:]])
