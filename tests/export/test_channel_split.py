import keras
import numpy as np
import pytest

import tflw
from tflw.export.channel_split import channel_split, split_candidates
from tflw.export.memory_plan import activation_buffers, lower_bound
from tflw.export.tflm import run_tflm


@pytest.fixture(scope="module")
def expanded(tmp_path_factory):
    """An inverted-residual-like model whose peak is the expanded tensor between a 1x1
    convolution and a stride-2 depthwise one."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 4))
    x = keras.layers.Conv2D(32, 1, activation="relu6")(inputs)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(8, 1)(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    x = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 4)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x)
    return qat, x, tflw.export(qat, tmp_path_factory.mktemp("split") / "out", sample_inputs=x,
                               minimize_arena=False).tflite_path.read_bytes()


def test_a_split_pair_gives_the_same_outputs_with_less_alive_at_once(expanded):
    _, _, model_bytes = expanded
    [(index, channels)] = split_candidates(model_bytes)
    assert channels == 32
    inputs = np.random.default_rng(1).integers(-128, 128, (8, 16, 16, 4)).astype(np.int8)
    before = run_tflm(model_bytes, [inputs], 1).outputs[0]
    assert np.std(before) > 0
    bound = lower_bound(activation_buffers(model_bytes))
    for groups in (2, 4, 8):
        split = channel_split(model_bytes, index, groups)
        assert np.array_equal(run_tflm(split, [inputs], 1).outputs[0], before)
        assert lower_bound(activation_buffers(split)) < bound
    with pytest.raises(ValueError, match="32 channels do not split into 3"):
        channel_split(model_bytes, index, 3)
    with pytest.raises(ValueError, match="operator 1 is not a convolution"):
        channel_split(model_bytes, 1, 2)


def test_export_splits_the_peak_pair_where_the_measured_arena_drops(expanded, tmp_path):
    qat, x, model_bytes = expanded
    result = tflw.export(qat, tmp_path / "out", sample_inputs=x)
    arena = result.report["arena"]
    assert arena["channel_splits"] and arena["arena_bytes"] == result.arena_bytes
    assert result.arena_bytes < 0.8 * arena["tflm_default_arena_bytes"]
    assert arena["offline_plan_head_bytes"] == arena["lower_bound_head_bytes"]
    assert result.verification.max_lsb_difference <= 1.001  # against the Keras model
    sketch = result.sketch_path.read_text()
    assert "offline memory plan" in sketch and "1 channel split(s)" in sketch
    assert f"would need {arena['tflm_default_arena_bytes']} bytes" in sketch


def test_the_cli_prints_both_arenas_and_can_leave_the_plan_to_tflite_micro(expanded, tmp_path,
                                                                           capsys):
    from tflw.cli import main

    qat, x, _ = expanded
    qat.save(tmp_path / "qat.keras")
    np.save(tmp_path / "x.npy", x)
    assert main(["export", str(tmp_path / "qat.keras"), str(tmp_path / "planned"),
                 "--data", str(tmp_path / "x.npy")]) == 0
    assert "with 1 channel split(s)" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "qat.keras"), str(tmp_path / "default"),
                 "--data", str(tmp_path / "x.npy"), "--default-arena"]) == 0
    assert "planned offline" not in capsys.readouterr().out
