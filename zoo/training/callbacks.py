"""Keras callbacks of a training run: TensorBoard scalars that need no ``tensorboard`` package.

``keras.callbacks.TensorBoard`` calls ``tf.summary.scalar``, which lives in the separate
``tensorboard`` pip package (absent on a lean training/serving machine: it then raises
TBNotInstalledError). The event files TensorBoard reads are written by TensorFlow's core op
``tf.summary.write``; given the scalars plugin's metadata, TensorBoard shows them exactly like
``tf.summary.scalar``'s. Layout as Keras': ``logs/train`` and ``logs/validation``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _scalar_metadata() -> bytes:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"  # TensorBoard's scalars plugin, format version 0
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    return metadata.SerializeToString()


class ScalarLogger(keras.callbacks.Callback):
    """Write training logs every ``every`` steps and ``val_*`` logs at each epoch end.

    Steps are generator steps (``on_train_batch_end`` receives the 1-based step count from
    :func:`zoo.training.train.train`), so curves continue seamlessly across ``--resume``.
    """

    def __init__(self, log_dir: str | Path, *, every: int = 1):
        super().__init__()
        self.every = max(1, int(every))
        self._metadata = _scalar_metadata()
        log_dir = Path(log_dir)
        self._train = tf.summary.create_file_writer(str(log_dir / "train"))
        self._val = tf.summary.create_file_writer(str(log_dir / "validation"))

    def _write(self, writer, logs: dict, step: int) -> None:
        with writer.as_default():
            for name, value in logs.items():
                tf.summary.write(name, tf.constant(float(value), tf.float32), step=int(step),
                                 metadata=self._metadata)
        writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if logs and batch % self.every == 0:
            self._write(self._train, {k: v for k, v in logs.items() if not k.startswith("val_")}, batch)

    def on_epoch_end(self, epoch, logs=None):
        val = {k[4:]: v for k, v in (logs or {}).items() if k.startswith("val_")}
        if val:
            step = int(self.model.step_counter.numpy()) if hasattr(self.model, "step_counter") else epoch
            self._write(self._val, val, step)

    def on_train_end(self, logs=None):
        self._train.close()
        self._val.close()


def read_scalars(event_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` from the event files in ``event_dir`` (for tests, reports)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(event_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "scalars":
                    continue
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                out.setdefault(value.tag, []).append((int(event.step), number))
    return out
