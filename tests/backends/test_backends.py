"""tflw's training pieces on the JAX and PyTorch backends, and their models exported here,
on TensorFlow.

A child process trains under KERAS_BACKEND=jax or torch (what a lent GPU machine without
TensorFlow does); this process loads the `.keras` files and exports them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import tflw
from tflw.data import load_mnist_subset
from tflw.demo import build_demo_model
from tflw.export.convert import to_tflite
from tflite_micro.python.tflite_micro.runtime import convert_bytearray_to_object

ROOT = Path(__file__).resolve().parents[2]


def int8_content(model_bytes: bytes) -> list:
    """The flatbuffer's constant buffers and every tensor's type, shape and quantization."""
    model = convert_bytearray_to_object(bytearray(model_bytes))
    buffers = [bytes(np.asarray(b.data, np.uint8)) for b in model.buffers if b.data is not None]
    tensors = [(t.type, tuple(t.shape), str(t.quantization.scale), str(t.quantization.zeroPoint))
               for t in model.subgraphs[0].tensors if t.quantization is not None]
    return [buffers, tensors]


def assert_same_int8_outputs(model, x: np.ndarray, predictions: Path, lsb: int = 0) -> None:
    """`model`'s logits here, in int8 units, within `lsb` of those the backend saved in
    `predictions`: their dequantized floats may differ by an ulp between backends
    (measured: 7e-9 between JAX and TensorFlow on an AMD EPYC machine, none on another)."""
    scale = float(model.get_layer("logits").output_quant.scale())
    here = np.round(model.predict(x, verbose=0) / scale)
    np.testing.assert_array_less(np.abs(here - np.round(np.load(predictions) / scale)), lsb + 0.5)


@pytest.fixture(scope="module", params=["jax", "torch"])
def backend_run(request, tmp_path_factory) -> Path:
    pytest.importorskip(request.param)
    out = tmp_path_factory.mktemp(request.param)
    env = {**os.environ, "KERAS_BACKEND": request.param, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.backends.backend_training", str(out)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_training_on_the_backend_moves_ranges_prunes_and_keeps_the_teacher(backend_run):
    facts = json.loads((backend_run / "facts.json").read_text())
    # every activation range learns; the input's stays at the pixels' [0, 1]
    assert facts["ranges_moved"] == facts["ranges"] - 1 > 0
    assert facts["teacher_unchanged"]
    assert facts["stripped_parameters"] < 0.6 * facts["dense_parameters"]


def test_a_backend_trained_qat_model_predicts_and_exports_identically_here(backend_run, tmp_path):
    (x, _), _ = load_mnist_subset()
    loaded = keras.saving.load_model(backend_run / "qat.keras")
    assert_same_int8_outputs(loaded, x[:64], backend_run / "qat_predictions.npy")
    # same weights, built here on TensorFlow -> the same int8 flatbuffer (every constant
    # buffer and quantization parameter; tensor names follow this process's layer counters)
    rebuilt = tflw.quantize_model(build_demo_model(width=8))
    rebuilt.set_weights(loaded.get_weights())
    assert int8_content(to_tflite(rebuilt)) == int8_content(to_tflite(loaded))
    result = tflw.export(loaded, tmp_path / "qat", sample_inputs=x[:64])
    assert result.verification.max_lsb_difference <= 1.001


def test_low_bit_training_on_the_backend_stays_finite_and_exports_here(backend_run, tmp_path):
    facts = json.loads((backend_run / "facts.json").read_text())
    assert np.all(np.isfinite(facts["low_bit_losses"])), facts["low_bit_losses"]
    assert facts["dead_tensor_output"] == [[0.0] * 3] * 4
    (x, _), _ = load_mnist_subset()
    loaded = keras.saving.load_model(backend_run / "w2a2.keras")
    assert_same_int8_outputs(loaded, x[:64], backend_run / "w2a2_predictions.npy")
    result = tflw.export(loaded, tmp_path / "w2a2", sample_inputs=x[:64])
    assert result.verification.max_lsb_difference <= 1.001


def test_ptq_reconstruction_runs_on_the_backend_and_exports_here(backend_run, tmp_path):
    facts = json.loads((backend_run / "facts.json").read_text())
    (x, _), _ = load_mnist_subset()
    for rounding in ("adaround", "brecq"):
        assert facts["ptq_weights_rounded_away_from_nearest"][rounding] > 0  # it learned
        loaded = keras.saving.load_model(backend_run / f"ptq_{rounding}.keras")
        # one LSB: once in 64 samples (JAX, BRECQ) an intermediate value sat on a level's
        # boundary and the backends' last-ulp differences rounded it apart
        assert_same_int8_outputs(loaded, x[:64], backend_run / f"ptq_{rounding}_predictions.npy",
                                 lsb=1)
        result = tflw.export(loaded, tmp_path / rounding, sample_inputs=x[:64])
        assert result.verification.max_lsb_difference <= 1.001


def test_backend_trained_pruned_and_distilled_models_export_here(backend_run, tmp_path):
    (x, _), _ = load_mnist_subset()
    stripped = tflw.strip_pruning(keras.saving.load_model(backend_run / "pruned.keras"))
    qat = tflw.quantize_model(stripped, calibration_data=x[:64])
    assert tflw.export(qat, tmp_path / "pruned", sample_inputs=x[:64]).verification.parity
    student = keras.saving.load_model(backend_run / "student.keras")
    assert tflw.export(student, tmp_path / "student", sample_inputs=x[:64]).verification.parity
