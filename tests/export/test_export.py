import json
import re
import shutil

import numpy as np
import pytest

import tflw
from tests.conftest import all_layers_model, gcc_round_trip
from tests.export.sketch_compiler import assert_compiles
from tflw.errors import (
    InterpreterError,
    MissingRepresentativeDataError,
    OutputDirectoryError,
    UncalibratedModelError,
)
from tflw.export.firmware import RESOLVER_METHODS, sketch_arena_sizes
from tflw.export.names import without_names
from tflite_micro.tensorflow.lite.micro.compression import model_editor
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema


@pytest.fixture(scope="module")
def exported(tmp_path_factory, pixels):
    qat = tflw.quantize_model(all_layers_model(), calibration_data=pixels)
    out_dir = tmp_path_factory.mktemp("export") / "out"
    return qat, tflw.export(qat, out_dir, sample_inputs=pixels[:50], name="all layers")


def test_export_writes_a_fully_integer_verified_model(exported):
    _, result = exported
    report = json.loads((result.out_dir / "report.json").read_text())
    assert report["inputs"][0]["dtype"] == "INT8" and report["outputs"][0]["dtype"] == "INT8"
    assert report["flatbuffer_bytes"] == result.tflite_path.stat().st_size
    assert report["verification"]["max_lsb_difference"] <= 1.001
    estimate = report["arena_32bit"]["arena_bytes"]  # 32-bit pointers: below the host's
    assert estimate < result.arena_bytes
    assert result.arena_size == report["arena_size"] >= estimate * 1.01 + report[
        "cmsis_nn_arena"]["margin_bytes"]
    assert report["arena_size_host"] >= result.arena_bytes


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_array_compiled_with_gcc_reproduces_the_flatbuffer(exported, tmp_path):
    _, result = exported
    files = {name: (result.out_dir / name).read_text() for name in ("model_data.h", "model_data.cc")}
    assert gcc_round_trip(files, tmp_path) == result.tflite_path.read_bytes()


def test_sketch_resolver_lists_exactly_the_flatbuffer_ops(exported, tmp_path):
    _, result = exported
    assert_compiles(result.out_dir, tmp_path)
    sketch = result.sketch_path.read_text()
    added = re.findall(r"resolver\.(Add\w+)\(\);", sketch)
    expected = [RESOLVER_METHODS[op.name] for op in result.info.ops]
    assert sorted(added) == sorted(expected)
    assert f"MicroMutableOpResolver<{len(expected)}>" in sketch
    assert sketch_arena_sizes(sketch) == {"mcu": result.arena_size,
                                          "host": result.report["arena_size_host"]}
    assert result.sketch_path.parent.name == "all_layers"
    assert (result.sketch_path.parent / "model_data.cc").is_file()
    project = result.out_dir / "platformio" / "all_layers"
    ini = (project / "platformio.ini").read_text()
    assert "default_envs = nano33ble" in ini and "board = esp32-s3-devkitc-1" in ini
    main = (project / "src" / "main.cpp").read_text()
    assert main == "#include <Arduino.h>\n\n" + sketch  # compiled above with the sketch


def test_shipped_flatbuffer_has_no_tensor_names_and_the_report_keeps_the_layers(
        exported, tmp_path, pixels):
    qat, result = exported
    shipped = result.tflite_path.read_bytes()
    assert all(t.name is None for t in model_editor.read(shipped).subgraphs[0].tensors)
    assert all(layer["output"] for layer in result.report["layers"])  # from the named model
    named = tflw.export(qat, tmp_path / "named", sample_inputs=pixels[:50], strip_names=False)
    assert named.flatbuffer_bytes - result.flatbuffer_bytes > 500
    assert any("conv" in (t.name or "")
               for t in model_editor.read(named.tflite_path.read_bytes()).subgraphs[0].tensors)
    # the same model: identical outputs, and the same bytes once the names are gone
    np.testing.assert_array_equal(named.verification.outputs[0], result.verification.outputs[0])
    assert without_names(named.tflite_path.read_bytes()) == shipped


def test_tensors_without_data_share_the_empty_sentinel_buffer(exported):
    _, result = exported
    model = schema.ModelT.InitFromPackedBuf(result.tflite_path.read_bytes(), 0)
    empty = [i for i, buffer in enumerate(model.buffers)
             if buffer.data is None or len(buffer.data) == 0]
    assert empty == [0]  # the converter gave each activation one (8 B apiece)
    activations = [t for t in model.subgraphs[0].tensors if t.buffer == 0]
    assert len(activations) > 10  # every op's output, verified above in TFLite-Micro


def test_export_is_deterministic(exported, tmp_path, pixels):
    qat, result = exported
    again = tflw.export(qat, tmp_path / "again", sample_inputs=pixels[:50], name="all layers")
    for name in ("model.tflite", "model_data.cc", "report.json"):
        assert (again.out_dir / name).read_bytes() == (result.out_dir / name).read_bytes()


def test_float_model_needs_representative_data(tmp_path):
    with pytest.raises(MissingRepresentativeDataError, match="representative_data"):
        tflw.export(all_layers_model(), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_float_model_post_training_quantized(tmp_path, pixels):
    result = tflw.export(all_layers_model(), tmp_path / "ptq", representative_data=pixels)
    assert result.report["quantization"].startswith("post-training")
    check = result.verification
    assert np.abs(check.outputs[0] - check.reference_outputs[0]).mean() < 0.02


def test_uncalibrated_qat_model_is_refused_without_partial_output(tmp_path):
    with pytest.raises(UncalibratedModelError, match="calibrate"):
        tflw.export(tflw.quantize_model(all_layers_model()), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_not_clobbered(exported, tmp_path, pixels):
    qat, _ = exported
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "mine.txt").write_text("x")
    with pytest.raises(OutputDirectoryError, match="overwrite=True"):
        tflw.export(qat, tmp_path / "keep")
    assert (tmp_path / "keep" / "mine.txt").read_text() == "x"


def test_unwritable_folder_is_a_clear_error(exported, tmp_path):
    qat, _ = exported
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OutputDirectoryError, match="a_file"):
        tflw.export(qat, blocker / "out")


def test_interpreter_failure_does_not_kill_the_caller():
    from tflw.export.tflm import run_tflm

    with pytest.raises(InterpreterError):
        run_tflm(b"TFL3" + bytes(60), [np.zeros((1, 4), np.int8)], output_count=1)


def test_tf_keras_model_goes_through_tfmot(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential([
        tf_keras.Input((6, 6, 1)),
        tf_keras.layers.Conv2D(4, 3, activation="relu"),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(3),
    ])
    qat = tflw.quantize_model(model)
    data = np.random.default_rng(0).uniform(0, 1, (64, 6, 6, 1)).astype("float32")
    qat.compile("adam", "mse")
    qat.fit(data, np.zeros((64, 3)), epochs=1, verbose=0)
    result = tflw.export(qat, tmp_path / "tfmot", sample_inputs=data)
    assert result.report["quantization"] == "QAT, tfmot (tf_keras)"
    assert result.verification.max_lsb_difference <= 2.001


def test_verify_shows_progress_only_when_asked(exported, pixels, capsys):
    _, result = exported
    quiet = tflw.verify(result.tflite_path, pixels)
    assert capsys.readouterr().out == ""
    loud = tflw.verify(result.tflite_path, pixels, progress=True)
    printed = capsys.readouterr().out
    assert f"{len(pixels)}/{len(pixels)}" in printed and "sample" in printed
    np.testing.assert_array_equal(quiet.outputs[0], loud.outputs[0])


def test_a_hung_interpreter_is_stopped_at_the_timeout(exported):
    from tflw.export.tflm import run_tflm

    _, result = exported
    info = result.info
    many = np.zeros((20000, *info.inputs[0].shape[1:]), np.int8)
    with pytest.raises(InterpreterError, match="did not finish within 1 s"):
        run_tflm(result.tflite_path.read_bytes(), [many], output_count=1, timeout_s=1)
