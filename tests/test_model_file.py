import os
import subprocess
import sys

import numpy as np
import pytest

import tflw
from tflw.errors import LegacyModelFileWarning, ModelFileError


@pytest.fixture(scope="module")
def legacy_h5(tmp_path_factory):
    """A float CNN saved as .h5 by tf_keras (Keras 2), with inputs to quantize it."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.layers.Input((8, 8, 1)),
        tf_keras.layers.Conv2D(4, 3, activation="relu"),
        tf_keras.layers.DepthwiseConv2D(3, activation="relu"),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(3),
    ])
    folder = tmp_path_factory.mktemp("legacy")
    model.save(folder / "legacy.h5")
    x = np.random.default_rng(0).uniform(0, 1, (64, 8, 8, 1)).astype("float32")
    np.save(folder / "x.npy", x)
    return folder / "legacy.h5", x, model


def test_a_legacy_h5_path_exports_through_tf_keras(legacy_h5, tmp_path):
    path, x, model = legacy_h5
    with pytest.warns(LegacyModelFileWarning, match="tf_keras"):
        result = tflw.export(str(path), tmp_path / "out", representative_data=x)
    check = tflw.verify(result.tflite_path, x)
    float_outputs = model.predict(x, verbose=0)
    spread = float_outputs.max() - float_outputs.min()
    assert np.abs(check.outputs[0] - float_outputs).max() < 0.05 * spread  # int8 PTQ error


def test_a_file_neither_keras_reads_is_named(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(ModelFileError, match="broken.h5.*neither tf_keras .* nor Keras 3"):
        tflw.export(str(path), tmp_path / "out", representative_data=np.zeros((4, 8, 8, 1)))
    assert not (tmp_path / "out").exists()


def test_the_command_line_prints_no_tensorflow_logging(legacy_h5, tmp_path):
    path, _, _ = legacy_h5
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    run = subprocess.run([sys.executable, "-m", "tflw", "export", str(path), str(tmp_path / "out"),
                          "--data", str(path.parent / "x.npy")],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    # what remains is tflw's own progress and its warning about the legacy file
    assert all(line.startswith(("tflw:", "  ")) or "LegacyModelFileWarning" in line
               for line in lines), lines
    assert "wrote" in run.stdout


def test_a_saved_tflw_model_loads_in_a_new_session(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 6))
    x = tflw.models.SparseShift(seed=0)(keras.layers.Conv2D(6, 1)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    data = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 6)).astype("float32")
    tflw.quantize_model(model, calibration_data=data).save(tmp_path / "qat.keras")
    model.save(tmp_path / "float.keras")
    np.save(tmp_path / "x.npy", data)
    expected = tflw.load_model(tmp_path / "qat.keras").predict(data, verbose=0)
    # Keras's own loader after `import keras; import tflw`, and tflw.load_model alone
    script = (f"import numpy as np, keras, tflw; x = np.load({str(tmp_path / 'x.npy')!r}); "
              f"a = keras.saving.load_model({str(tmp_path / 'qat.keras')!r}); "
              f"keras.saving.load_model({str(tmp_path / 'float.keras')!r}); "
              f"np.save({str(tmp_path / 'out.npy')!r}, a.predict(x, verbose=0))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    run = subprocess.run([sys.executable, "-c", "import tflw; tflw.load_model("
                          f"{str(tmp_path / 'qat.keras')!r})"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
