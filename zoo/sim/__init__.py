"""The physics of SEM imaging, numpy/OpenCV only (no network, no TensorFlow).

- :mod:`zoo.sim.acquisition`: the one acquisition model, what a scan at a given pixel pitch
  records from a finer image or specimen (probe blur, point sampling at the scan's pitch and
  phase, the beam's travel during the dwell, shot noise at the dose, scan-line jitter, drift),
  with the ranges HR-only training draws its parameters from. Used by the simulator, by HR-only
  data preparation and fine-tuning (:mod:`zoo.data.hr_only`), by the real-image evaluation and
  by the client's consistency map.
- the specimen simulator (``semzoo simulate``): :mod:`zoo.sim.specimens` (the fine grid, yield
  layers, hydrogel) and :mod:`zoo.sim.gold_on_carbon`, the specimens; :mod:`zoo.sim.samples`,
  the sample types (pixel sizes, probe, dose, scan and detector noise); :mod:`zoo.sim.scan`,
  each acquisition's scan geometry in nm and the true LR/HR mapping; :mod:`zoo.sim.simulate`,
  a pair (specimen -> probe -> scan -> detection -> brightness/contrast); :mod:`zoo.sim.dataset`,
  a data set on disk with its truth.json.
"""
