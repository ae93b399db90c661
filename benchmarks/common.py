"""What every benchmark shares: step timing, the printed table and the JSON file."""

import json
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

import tflw

RESULTS = Path(__file__).resolve().parent / "results"


def step_timer(keras_module=keras, warmup: int = 20):
    """A callback recording the wall time of each training batch, for `keras_module`
    (Keras 3 or tf_keras: each accepts only its own callbacks). Its `median` skips the
    warm-up (tracing) batches."""

    class StepTimer(keras_module.callbacks.Callback):
        times: list = []

        def on_train_begin(self, logs=None):
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

        @property
        def median(self) -> float:
            return float(np.median(self.times[warmup:] or self.times))

    return StepTimer()


def compiled(model, learning_rate: float, keras_module=keras):
    model.compile(
        optimizer=keras_module.optimizers.Adam(learning_rate),
        loss=keras_module.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def fit_timed(model, data, epochs: int, batch_size: int, keras_module=keras,
              callbacks: Sequence = (), warmup: int = 20, verbose: int = 2) -> float:
    """Train and return the median seconds per step after `warmup` steps."""
    timer = step_timer(keras_module, warmup)
    model.fit(*data, epochs=epochs, batch_size=batch_size, verbose=verbose,
              callbacks=[timer, *callbacks])
    return timer.median


def on_device(model, x_test, y_test, workdir: str, name: str, representative=None) -> dict:
    """Export `model`, run every test digit in TFLite-Micro, compare with the model."""
    result = tflw.export(model, os.path.join(workdir, name), representative_data=representative)
    check = tflw.verify(result.tflite_path, x_test, reference=model)
    return {
        "tflm_accuracy": float(np.mean(check.outputs[0].argmax(-1) == y_test)),
        "invoke_us": check.invoke_seconds * 1e6,
        "gzip_bytes": result.report["gzip_bytes"],
        "macs": result.report["macs"],
        "argmax_agreement": check.argmax_agreement,
        "max_lsb_difference": check.max_lsb_difference,
        "outputs_over_1_lsb": float(np.mean(check.lsb_differences[0] > 1.001)),
        "flatbuffer_bytes": result.flatbuffer_bytes,
        "arena_bytes": result.arena_bytes,
        "lut": result.report["lut"],
    }


def format_table(rows: Sequence[dict], columns: Sequence[tuple]) -> str:
    """A plain-text table; `columns` are (key, header, format) triples."""
    cells = [[header for _, header, _ in columns]] + [
        ["-" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in columns]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def machine() -> dict:
    """This machine, its Keras backend and the library versions."""
    from importlib import metadata

    versions = {}
    for package in ("tensorflow", "keras", "jax", "torch", "tflite-micro"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # a GPU machine has no TensorFlow
            versions[package] = None
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpu_count": os.cpu_count(), "keras_backend": keras.backend.backend(), **versions}


def write_results(name: str, payload: dict) -> Path:
    """Write `payload` with the machine and library versions to results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path
