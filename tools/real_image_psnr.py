"""PSNR of Lanczos x2 and zoo models on real HR images (LR = every second pixel), as issue 12 scores.

    python tools/real_image_psnr.py ZOO HR_DIR MODEL...

LR = zoo.sim.acquisition.stepping_scan_record(hr); each output is scored on the HR pixels the LR
did not sample (8-px border excluded), PSNR after a gain/offset fit, at the best sub-pixel shift
(grid of 0.25 px in [-1, 1], then 0.05 px). Interim maintainer script until `semzoo evaluate
--hr-only` lands; small-preset models only.
"""
import sys, glob, numpy as np, cv2
from zoo.data.sem_tiff import read_sem
from zoo.data.register import lanczos_upsample2x
from zoo.sim.acquisition import stepping_scan_record, unsampled_mask
from zoo.training.finetune_metrics import enhance_whole_image
from zoo.training.finetune_run import parent_generator
from zoo.nets.presets import get_preset
from zoo.registry.store import Zoo
from zoo.evaluation.quality import match_intensity, peak_signal_noise_ratio

def shifted(img, dx, dy):
    M = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img.astype(np.float32), M, (img.shape[1], img.shape[0]), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)

def score(out, hr, mask):
    best = None
    for dx in np.arange(-1, 1.01, 0.25):
        for dy in np.arange(-1, 1.01, 0.25):
            s = peak_signal_noise_ratio(hr, shifted(out, dx, dy), mask=mask)
            if best is None or s > best[0]: best = (s, dx, dy)
    s0, dx0, dy0 = best
    for dx in np.arange(dx0 - 0.2, dx0 + 0.21, 0.05):
        for dy in np.arange(dy0 - 0.2, dy0 + 0.21, 0.05):
            s = peak_signal_noise_ratio(hr, shifted(out, dx, dy), mask=mask)
            if s > best[0]: best = (s, dx, dy)
    return best

zoo = Zoo(sys.argv[1]); models = sys.argv[3:]
gens = {}
for m in models:
    n, v = zoo.resolve(m); gens[m] = parent_generator(get_preset("small"), zoo.version_dir(n, v))
rows = {"lanczos": [], **{m: [] for m in models}}
for f in sorted(glob.glob(sys.argv[2] + "/*.tif")):
    hr = read_sem(f).image.astype(np.float32)
    hr = hr[: hr.shape[0] // 2 * 2, : hr.shape[1] // 2 * 2]
    lr = stepping_scan_record(hr, 2, (0, 0))
    mask = unsampled_mask(hr.shape, 2, (0, 0)); b = 8
    mask[:b] = mask[-b:] = False; mask[:, :b] = mask[:, -b:] = False
    outs = {"lanczos": lanczos_upsample2x(lr)}
    for m in models: outs[m] = enhance_whole_image(gens[m], lr)
    line = [f.split("__")[-1][:28]]
    for k, o in outs.items():
        s, dx, dy = score(o, hr, mask); rows[k].append(s); line.append(f"{k}={s:.2f}({dx:+.2f},{dy:+.2f})")
    print(" ".join(line), flush=True)
for k, v in rows.items():
    d = np.array(v) - np.array(rows["lanczos"])
    print(f"{k}: mean {np.mean(v):.2f} dB, vs lanczos mean {d.mean():+.2f} worst {d.min():+.2f}")
