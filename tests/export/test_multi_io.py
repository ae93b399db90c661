"""A sensor-fusion model with two inputs and two outputs, end to end, and bad data for it
refused by every entry point with the named tflw error, before anything is written."""

import os
import shutil

import keras
import numpy as np
import pytest

import tflw
from tflw.errors import InputMismatchError, NonFiniteError
from tflw.firmware import check_firmware

from .sketch_compiler import assert_compiles


def fusion_model() -> keras.Model:
    """A conv branch and a dense branch joined: a classifier and a regressor head."""
    keras.utils.set_random_seed(0)
    image, signal = keras.Input((8, 8, 1), name="image"), keras.Input((4,), name="signal")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(image))
    y = keras.layers.Dense(8, activation="relu")(signal)
    z = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([x, y]))
    label = keras.layers.Dense(3, activation="softmax", name="label")(z)
    score = keras.layers.Dense(1, name="score")(z)
    return keras.Model([image, signal], [label, score], name="fusion")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (96, 8, 8, 1)).astype("float32")
    signal = rng.normal(size=(96, 4)).astype("float32")
    label = (image.mean(axis=(1, 2, 3)) * 3).astype(int).clip(0, 2)
    return image, signal, label, signal.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def exported(data, tmp_path_factory):
    image, signal, label, score = data
    qat = tflw.quantize_model(fusion_model(), calibration_data=[image, signal])
    qat.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    qat.fit({"image": image, "signal": signal}, [label, score], epochs=2, batch_size=32, verbose=0)
    tflw.calibrate(qat, {"image": image, "signal": signal})
    out_dir = tmp_path_factory.mktemp("fusion") / "out"
    return qat, tflw.export(qat, out_dir, sample_inputs={"image": image, "signal": signal})


def test_two_inputs_and_two_outputs_train_export_and_match_tflite_micro_on_each_output(
        exported, data, tmp_path):
    qat, result = exported
    assert [len(t.shape) for t in result.info.inputs] == [4, 2]
    assert [t.shape[-1] for t in result.info.outputs] == [3, 1]
    assert len(result.verification.lsb_differences) == 2
    assert all(d.max() <= 1.001 for d in result.verification.lsb_differences)
    image, signal = data[:2]
    again = tflw.verify(result.tflite_path, {"signal": signal[:20], "image": image[:20]},
                        reference=qat)
    listed = tflw.verify(result.tflite_path, [image[:20], signal[:20]])
    assert all(np.array_equal(a, b) for a, b in zip(again.outputs, listed.outputs))
    sketch = result.sketch_path.read_text()
    assert "constexpr int kInputCount = 2;" in sketch
    assert "constexpr int kOutputCount = 2;" in sketch
    assert_compiles(result.out_dir, tmp_path)


def test_the_float_model_exports_through_the_converters_ptq_from_batches(data, tmp_path):
    image, signal = data[:2]
    batches = ([image[i:i + 32], signal[i:i + 32]] for i in range(0, 96, 32))
    result = tflw.export(fusion_model(), tmp_path / "out", representative_data=batches)
    # the converter's int8 against the float model: a few steps on each output
    assert len(result.verification.lsb_differences) == 2
    assert all(d.max() <= 4 for d in result.verification.lsb_differences)


@pytest.mark.skipif(not os.environ.get("TFLW_TFLM_DIR") or shutil.which("qemu-system-arm") is None,
                    reason="set TFLW_TFLM_DIR to a TFLite-Micro tree; needs qemu-system-arm")
def test_the_firmware_feeds_each_input_and_returns_each_output_bit_exact_on_a_cortex_m4(
        exported, data):
    _, result = exported
    image, signal = data[:2]
    check = check_firmware(result.out_dir, os.environ["TFLW_TFLM_DIR"], target="cortex-m4",
                           inputs={"image": image, "signal": signal}, samples=10)
    assert check.bit_exact and check.samples == 10
    # a small model: planning its head, not the plan, sets the arena the sketch allows for
    assert check.arena_used_bytes < result.report["arena_32bit"]["min_arena_bytes"]
    assert "Output 1: " in check.sketch_output and "differ from host TFLite-Micro: 0 of 4" in (
        check.sketch_output)


WRONG = {
    "count": (InputMismatchError, r"gives 1 array\(s\); the model takes 2 input\(s\)"),
    "shape": (InputMismatchError, r"for input 'image' has shape \(96, 9, 9, 1\); model input "
                                  r"'image' takes samples of shape \(8, 8, 1\)"),
    "nan": (NonFiniteError, r"for input 'signal' holds NaN/Inf \(first in sample 5\)"),
}


def wrong(kind: str, image: np.ndarray, signal: np.ndarray) -> list:
    if kind == "count":
        return [image]
    if kind == "shape":
        return [np.zeros((96, 9, 9, 1), np.float32), signal]
    bad = signal.copy()
    bad[5, 2] = np.nan
    return [image, bad]


@pytest.mark.parametrize("kind", WRONG)
@pytest.mark.parametrize("entry", ["quantize_model", "calibrate", "export sample_inputs",
                                   "export representative_data", "verify", "analyze",
                                   "firmware check"])
def test_bad_data_is_refused_by_name_before_anything_is_written(entry, kind, exported, data,
                                                                tmp_path):
    qat, result = exported
    bad = wrong(kind, *data[:2])
    error, message = WRONG[kind]
    out_dir = tmp_path / "out"
    calls = {
        "quantize_model": lambda: tflw.quantize_model(fusion_model(), calibration_data=bad),
        "calibrate": lambda: tflw.calibrate(qat, bad),
        "export sample_inputs": lambda: tflw.export(qat, out_dir, sample_inputs=bad),
        "export representative_data": lambda: tflw.export(fusion_model(), out_dir,
                                                          representative_data=bad),
        "verify": lambda: tflw.verify(result.tflite_path, bad, reference=qat),
        "analyze": lambda: tflw.analyze(fusion_model(), representative_data=bad),
        # the data is checked before the TFLite-Micro tree (here: none) is looked at
        "firmware check": lambda: check_firmware(result.out_dir, tmp_path, inputs=bad),
    }
    with pytest.raises(error, match=message):
        calls[entry]()
    assert not out_dir.exists()


def test_the_command_line_reads_one_array_per_input_from_an_npz(exported, data, tmp_path,
                                                                 capsys):
    from tflw.cli import main

    _, result = exported
    image, signal = data[:2]
    np.savez(tmp_path / "by_name.npz", signal=signal[:7], image=image[:7])
    np.savez(tmp_path / "in_order.npz", image[:5], signal[:5])
    np.savez(tmp_path / "unknown.npz", image=image[:5], sound=signal[:5])
    tflite = str(result.tflite_path)
    # the flatbuffer's names are stripped: an .npz by name needs the model's, in order works
    assert main(["verify", tflite, str(tmp_path / "in_order.npz")]) == 0
    assert "ran 5 samples" in capsys.readouterr().out
    assert main(["verify", tflite, str(tmp_path / "by_name.npz"), "--reference",
                 str(_saved(exported[0], tmp_path))]) == 0
    assert "ran 7 samples" in capsys.readouterr().out
    assert main(["verify", tflite, str(tmp_path / "by_name.npz")]) == 1
    assert "the flatbuffer does not name them" in capsys.readouterr().err
    assert main(["verify", tflite, str(tmp_path / "unknown.npz"), "--reference",
                 str(tmp_path / "qat.keras")]) == 1
    assert "unknown ['sound']" in capsys.readouterr().err


def _saved(model: keras.Model, folder) -> str:
    path = folder / "qat.keras"
    model.save(path)
    return path


def test_a_recorded_firmware_arena_keeps_what_planning_needs_on_a_small_model(exported,
                                                                            tmp_path):
    from tflw.export.firmware import sketch_arena_sizes
    from tflw.firmware import FirmwareCheck, record_arena

    _, result = exported
    out_dir = tmp_path / "copy"
    shutil.copytree(result.out_dir, out_dir)
    estimate = result.report["arena_32bit"]
    planning = estimate["min_arena_bytes"] - estimate["arena_bytes"]
    assert planning > 0  # this model's head is smaller than its planner's temporary memory
    # what its Cortex-M4 build reported: 1,752 B used, AllocateTensors() failing below 2,336
    measured = FirmwareCheck(target="cortex-m4", kernels="reference", model="int8", samples=1,
                             identical_samples=1, max_lsb_difference=0, arena_used_bytes=1752,
                             python_arena_bytes=result.arena_bytes, sketch_output="")
    written = record_arena(out_dir, measured)
    assert written == sketch_arena_sizes(
        next((out_dir / "arduino").glob("*/*.ino")).read_text())["mcu"] >= 2336
