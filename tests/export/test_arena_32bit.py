"""The 32-bit arena estimate against Cortex-M4 builds of TFLite-Micro (the recorded
measurements of benchmarks/results/arena_32bit.json; tests/firmware builds one where
TFLW_TFLM_DIR names a TFLite-Micro tree)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import tflw
from tflw.export.arena_32bit import ModelCounts, arena_on_32_bit, recorded_allocations

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "arena_32bit.json"


def test_the_recording_is_read_and_pointer_structs_halve():
    printed = """[RecordingMicroAllocator] Arena allocation total 12512 bytes
[RecordingMicroAllocator] Arena allocation head 9408 bytes
[RecordingMicroAllocator] Arena allocation tail 3104 bytes
[RecordingMicroAllocator] 'TfLiteEvalTensor data' used 480 bytes with alignment overhead (requested 480 bytes for 20 allocations)
[RecordingMicroAllocator] 'Persistent TfLiteTensor data' used 128 bytes with alignment overhead (requested 128 bytes for 2 tensors)
[RecordingMicroAllocator] 'Persistent TfLiteTensor quantization data' used 64 bytes with alignment overhead (requested 64 bytes for 4 allocations)
[RecordingMicroAllocator] 'Persistent buffer data' used 1208 bytes with alignment overhead (requested 1184 bytes for 18 allocations)
[RecordingMicroAllocator] 'NodeAndRegistration struct' used 512 bytes with alignment overhead (requested 512 bytes for 8 NodeAndRegistration structs)"""  # noqa: E501
    assert recorded_allocations(printed)["kinds"]["Persistent buffer data"] == (1208, 1184, 18)
    demo = ModelCounts(("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "MAX_POOL_2D",
                        "CONV_2D", "MEAN", "FULLY_CONNECTED"), tensors=19, planned=9)
    estimate = arena_on_32_bit(printed, demo)
    parts = estimate["persistent_parts"]
    assert parts["TfLiteEvalTensor data"] == 240 and parts["NodeAndRegistration struct"] == 256
    assert parts["Persistent TfLiteTensor quantization data"] == 40
    assert estimate["non_persistent_bytes"] == 9408
    # the demo CNN, whose Cortex-M4 build used 11,412 B (benchmarks/results/firmware.json)
    assert abs(estimate["arena_bytes"] - 11412) <= 0.01 * 11412
    # five ops whose OpData hold two pointers: 16 B less each than the 1,184 B recorded
    assert estimate["persistent_parts"]["Persistent buffer data"] == 1184 - 5 * 16
    # planning a 9-buffer head takes less than the 9,408 B plan: the arena used is enough
    assert estimate["min_arena_bytes"] == estimate["arena_bytes"]
    assert arena_on_32_bit("no recording here", demo) is None


ZOO_ROWS = [row for row in json.loads(RESULTS.read_text())["rows"]
            if row["model"] in ("ds_cnn", "gesture_cnn")]  # the small ones: seconds each


@pytest.mark.parametrize("row", ZOO_ROWS, ids=lambda r: r["model"])
def test_the_estimate_is_within_one_percent_of_each_recorded_cortex_m4_build(row, tmp_path):
    keras.utils.set_random_seed(0)  # the benchmark's model: the same flatbuffer
    model = getattr(tflw.models, row["model"])()
    x = np.random.default_rng(0).uniform(0, 1, (4, *model.input_shape[1:])).astype("float32")
    result = tflw.export(model, tmp_path / "out", representative_data=x, minimize_arena=False,
                         dense="per-tensor")
    estimate = result.report["arena_32bit"]
    assert estimate["non_persistent_bytes"] == row["cortex_m4_non_persistent_bytes"], estimate
    assert abs(estimate["arena_bytes"] - row["cortex_m4_arena_bytes"]) <= (
        0.01 * row["cortex_m4_arena_bytes"])
