import json

import keras
import numpy as np
import pytest

import tflw
from tflw.export.dense_granularity import MIN_ERROR_CUT, has_dense, output_error


def _autoencoder() -> keras.Model:
    """The issue's 640-128-128-128-128-8-128-128-128-128-640 autoencoder (266 k weights)."""
    x = inputs = keras.Input((640,))
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = keras.layers.Dense(units)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.Dense(640)(x))


def test_dense_layers_go_per_tensor_where_per_channel_only_costs_flash_and_arena(tmp_path):
    keras.utils.set_random_seed(0)
    model = _autoencoder()
    x = np.random.default_rng(0).normal(size=(400, 640)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, x, epochs=1, batch_size=64, verbose=0)
    result = tflw.export(model, tmp_path / "auto", representative_data=x[:300],
                         sample_inputs=x[300:])
    dense = result.report["dense"]
    tensor, channel = dense["per-tensor"], dense["per-channel"]
    assert dense["chosen"] == "per-tensor"
    assert result.flatbuffer_bytes == tensor["flatbuffer_bytes"]
    assert result.arena_bytes == tensor["arena_bytes"] < 5_000
    assert channel["flatbuffer_bytes"] - tensor["flatbuffer_bytes"] > 30_000  # scales, zero points
    assert channel["arena_bytes"] > 4 * tensor["arena_bytes"]  # per-channel multipliers
    assert channel["output_error"] > (1 - MIN_ERROR_CUT) * tensor["output_error"]
    written = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert written["dense"]["chosen"] == "per-tensor"
    forced = tflw.export(model, tmp_path / "forced", representative_data=x[:300],
                         sample_inputs=x[300:], dense="per-channel")
    assert forced.flatbuffer_bytes == channel["flatbuffer_bytes"]
    qat = tflw.export(tflw.quantize_model(model, calibration_data=x[:300]), tmp_path / "qat",
                      sample_inputs=x[300:])
    assert qat.report["dense"]["chosen"] == "per-tensor"
    assert abs(qat.flatbuffer_bytes - tensor["flatbuffer_bytes"]) < 2_000  # same layout


def test_per_channel_is_kept_where_outlier_weights_would_coarsen_every_other_channel(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Dense(32)(inputs))
    rng = np.random.default_rng(0)
    kernel = rng.choice([-0.3, 0.3], size=(64, 32)).astype(np.float32)
    kernel[:, :4] = 0.0
    kernel[0, :4] = 3.0 * np.sqrt(64 / 1)  # four columns of one large weight each
    model.layers[1].set_weights([kernel, np.zeros(32, np.float32)])
    x = rng.normal(size=(300, 64)).astype(np.float32)
    result = tflw.export(model, tmp_path / "out", representative_data=x, sample_inputs=x[:200])
    dense = result.report["dense"]
    assert dense["chosen"] == "per-channel"
    assert dense["per-channel"]["output_error"] < 0.5 * dense["per-tensor"]["output_error"]
    assert result.flatbuffer_bytes == dense["per-channel"]["flatbuffer_bytes"]


def test_a_model_without_dense_layers_has_nothing_to_choose_and_a_bad_choice_is_refused(tmp_path):
    inputs = keras.Input((8, 8, 1))
    conv = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    assert not has_dense(conv)
    x = np.random.default_rng(0).normal(size=(50, 8, 8, 1)).astype(np.float32)
    assert tflw.export(conv, tmp_path / "conv", representative_data=x).report["dense"] is None
    with pytest.raises(ValueError, match="per-tensor, per-channel"):
        tflw.export(conv, tmp_path / "bad", representative_data=x, dense="per-layer")
    assert not (tmp_path / "bad").exists()


def test_output_error_is_relative_to_the_reference_scale():
    reference = np.array([[3.0, -4.0]])
    assert output_error(reference, reference) == 0.0
    assert output_error(reference * 1.1, reference) == pytest.approx(0.1)
