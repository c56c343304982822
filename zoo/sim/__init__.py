"""The physics of an SEM acquisition, numpy/OpenCV only (no network, no TensorFlow).

:mod:`zoo.sim.acquisition` is the one model of what a scan at a given pixel pitch records from
a finer image: probe blur, point sampling at the scan's pitch and phase, the beam's travel
during the dwell, shot noise at the dose, scan-line jitter and drift. HR-only data preparation
(``semzoo prepare`` on ``RAW/hr`` alone), HR-only fine-tuning and the real-image evaluation use
it; the specimen simulator's own scan geometry and detector live in :mod:`zoo.sim.scan`
and share its noise and blur definitions (``FWHM_PER_SIGMA``).
"""
