"""Test helper: an LR/HR pair of one random scene with a known HR->LR mapping.

Independent of the simulator: a band-limited random texture (blurred dots + smooth background)
sampled on the LR grid (spacing 2) and, through a known affine (rotation, scale error, shift)
plus a smooth sinusoidal drift, on the HR grid; both with Gaussian noise. Like the microscope,
the HR covers the centre of the LR field at twice the magnification with the same pixel count.
"""

from __future__ import annotations

import cv2
import numpy as np


def make_pair(rng: np.random.Generator, lr_size=(256, 192), *, angle_deg=0.6, scale=1.006,
              shift=(3.2, -2.1), drift=0.8, noise=0.2):
    """Return (lr, hr, hr_to_lr) with ``hr_to_lr(x_hr, y_hr) -> (x_lr, y_lr)`` the truth."""
    w, h = lr_size
    pad = 64
    sw, sh = 4 * w + 2 * pad, 4 * h + 2 * pad  # scene grid: 4 samples per LR pixel
    scene = np.zeros((sh, sw), np.float32)
    n = sw * sh // 400
    scene[rng.integers(0, sh, n), rng.integers(0, sw, n)] = rng.uniform(0.5, 1.5, n)
    scene = cv2.GaussianBlur(scene, (0, 0), 3.0) * 30
    scene += cv2.GaussianBlur(rng.standard_normal((sh, sw)).astype(np.float32), (0, 0), 12) * 2
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    a = np.deg2rad(angle_deg)
    linear = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale / 2

    def hr_to_lr(x_hr, y_hr):
        x_hr, y_hr = np.asarray(x_hr, float), np.asarray(y_hr, float)
        p = np.stack([x_hr - centre[0], y_hr - centre[1]], -1) @ linear.T
        dx = drift * np.sin(2 * np.pi * y_hr / (1.3 * h) + 0.3)
        dy = drift * np.cos(2 * np.pi * x_hr / (1.1 * w))
        return centre[0] + p[..., 0] + shift[0] + dx, centre[1] + p[..., 1] + shift[1] + dy

    def sample(x_lr, y_lr):
        return cv2.remap(scene, (4 * x_lr + pad).astype(np.float32), (4 * y_lr + pad).astype(np.float32),
                         cv2.INTER_CUBIC)

    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    lr = sample(xx, yy)
    hr = sample(*hr_to_lr(xx, yy))
    lr = lr + noise * lr.std() * rng.standard_normal(lr.shape)
    hr = hr + noise * hr.std() * rng.standard_normal(hr.shape)
    return lr.astype(np.float32), hr.astype(np.float32), hr_to_lr


def mapping_errors(reg, hr_to_lr, margin: int = 8, step: int = 4) -> np.ndarray:
    """Distance (registered/HR pixels) between the estimated and the true correspondence.

    For registered-grid points u (valid, away from the edge): the estimate says u shows HR
    point h(u); the truth maps h(u) to an LR point, which must be u's own LR coordinate.
    """
    h, w = reg.hr_registered.shape
    yy, xx = np.mgrid[margin:h - margin:step, margin:w - margin:step].astype(float)
    keep = reg.valid_mask[yy.astype(int), xx.astype(int)]
    xx, yy = xx[keep], yy[keep]
    tx, ty = hr_to_lr(*reg.registered_to_hr(xx, yy))
    ex, ey = reg.registered_to_lr(xx, yy)
    return 2 * np.hypot(tx - ex, ty - ey)  # LR pixels -> registered (HR) pixels
