import dataclasses

import keras
import numpy as np
import pytest

import tflw
from tests.conftest import all_layers_model
from tflw.analysis import keras_costs, netscore
from tflw.demo import build_demo_model
from tflw.errors import ModelTooLargeError

# The demo CNN at width 16, by hand (output elements x fan-in per output):
# conv 3x3/2 -> 14x14x16: 14*14*16*9; depthwise 3x3: 14*14*16*9; pointwise: 14*14*16*16;
# conv 3x3 -> 7x7x32: 7*7*32*(9*16); dense 32 -> 10: 10*32.
DEMO_MACS = 14 * 14 * 16 * 9 * 2 + 14 * 14 * 16 * 16 + 7 * 7 * 32 * 9 * 16 + 10 * 32
# kernels plus one int32 bias per output channel (BatchNorm folded into it)
DEMO_PARAMETERS = (9 + 1) * 16 + (9 + 1) * 16 + (16 + 1) * 16 + (144 + 1) * 32 + (32 + 1) * 10


@pytest.fixture(scope="module")
def demo_qat():
    keras.utils.set_random_seed(0)
    digits = np.random.default_rng(0).uniform(0, 1, (64, 28, 28, 1)).astype(np.float32)
    model = build_demo_model()
    # a trained head has a bias; the converter drops an all-zero FULLY_CONNECTED bias
    model.get_layer("logits").bias.assign(np.linspace(-0.5, 0.5, 10))
    return tflw.quantize_model(model, calibration_data=digits)


def test_keras_counts_match_a_hand_computation():
    assert keras_costs(build_demo_model()) == (DEMO_PARAMETERS, DEMO_MACS)


def test_keras_model_and_its_flatbuffer_report_the_same_totals(demo_qat):
    from tflw.export.convert import to_tflite

    from_keras = tflw.analyze(demo_qat)
    from_flatbuffer = tflw.analyze(to_tflite(demo_qat))
    assert (from_keras.parameters, from_keras.macs) == (DEMO_PARAMETERS, DEMO_MACS)
    assert keras_costs(demo_qat) == (from_flatbuffer.parameters, from_flatbuffer.macs)
    assert from_keras.arena_bytes == from_flatbuffer.arena_bytes > 0
    assert from_keras.flatbuffer_bytes == from_flatbuffer.flatbuffer_bytes
    # the weights dominate flash: int8 kernels + int32 biases, within the flatbuffer
    assert from_keras.weight_bytes == DEMO_PARAMETERS + 3 * (16 + 16 + 16 + 32 + 10)
    assert from_keras.weight_bytes < from_keras.flatbuffer_bytes


def test_summary_lists_every_op_and_the_board_budget(demo_qat):
    analysis = tflw.analyze(demo_qat, board="nano33ble")
    text = str(analysis)
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"):
        assert op in text
    assert f"{DEMO_MACS:,}" in text and "Arduino Nano 33 BLE Sense" in text and "estimate" in text
    # the demo's last 3x3 convolution asks CMSIS-NN for 2 x 144 int16 of im2col
    assert max(op["scratch_bytes"] for op in analysis.cmsis_nn_arena["ops"]) == 576
    assert f"up to {analysis.cmsis_nn_arena['margin_bytes']:,} B more" in text
    board = tflw.boards.get("nano33ble")
    assert analysis.latency_estimate_seconds == pytest.approx(
        DEMO_MACS * board.cycles_per_mac / 64e6)


def test_a_float_model_is_analysed_without_data():
    analysis = tflw.analyze(all_layers_model())
    assert analysis.macs == keras_costs(all_layers_model())[1]
    assert "synthetic" in analysis.calibration


def test_netscore_and_information_density_by_hand(demo_qat):
    # a = 97 %, p = 1 M, m = 1 M: 20 log10(9409) = 79.4709 dB
    assert netscore(0.97, 1_000_000, 1_000_000) == pytest.approx(79.4709, abs=1e-4)
    analysis = tflw.analyze(demo_qat)
    assert analysis.information_density(0.9) == pytest.approx(0.9 / DEMO_PARAMETERS)
    expected = 20 * np.log10(90.0**2 / np.sqrt(DEMO_PARAMETERS / 1e6 * DEMO_MACS / 1e6))
    assert analysis.netscore(0.9) == pytest.approx(expected)


def test_a_model_too_large_for_the_board_names_the_overshoot_and_the_layers(demo_qat, tmp_path):
    tiny_board = dataclasses.replace(tflw.boards.get("nano33ble"), flash_bytes=170 * 1024,
                                     ram_bytes=56 * 1024)  # 10 KB flash, 8 KB arena left
    analysis = tflw.analyze(demo_qat)
    with pytest.raises(ModelTooLargeError) as raised:
        analysis.check_fits(tiny_board)
    message = str(raised.value)
    flash_over = analysis.flatbuffer_bytes - 10 * 1024
    arena_over = analysis.arena_bytes - 8 * 1024
    assert f"{flash_over:,} B more" in message and f"{arena_over:,} B more" in message
    # the 3x3 conv holds most weights: 16*9*32 int8 + 32 int32 = 4,736 B
    largest = max(analysis.ops, key=lambda op: op.parameter_bytes)
    assert f"{largest.layer} (CONV_2D, 4,736 B)" in message
    with pytest.raises(ModelTooLargeError):
        tflw.export(demo_qat, tmp_path / "out", board=tiny_board)
    assert not (tmp_path / "out").exists()


def test_pareto_front_and_plots(demo_qat, tmp_path):
    from tflw.analysis import pareto_front, plot_layers, plot_pareto

    runs = [{"run": "a", "flash_bytes": 10, "accuracy": 0.90},
            {"run": "b", "flash_bytes": 20, "accuracy": 0.95},
            {"run": "c", "flash_bytes": 30, "accuracy": 0.93},   # beaten by b
            {"run": "d", "flash_bytes": 10, "accuracy": 0.85}]   # beaten by a
    assert [r["run"] for r in pareto_front(runs)] == ["a", "b"]
    plot_layers(tflw.analyze(demo_qat), tmp_path / "layers.png")
    plot_pareto(runs, tmp_path / "pareto.png")
    for name in ("layers.png", "pareto.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_access_of_a_1x1_convolution_is_shufflenet_v2s_formula_plus_its_bias():
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, keras.layers.Conv2D(32, 1)(inputs))
    analysis = tflw.analyze(model)
    (conv,) = [op for op in analysis.ops if op.name == "CONV_2D"]
    # h*w*(c_in + c_out) + c_in*c_out int8 bytes (Ma et al. 2018), and 32 int32 biases
    assert conv.memory_access_bytes == 8 * 8 * (16 + 32) + 16 * 32 + 32 * 4
    assert analysis.memory_access_bytes >= conv.memory_access_bytes
    assert f"{analysis.memory_access_bytes:,}" in str(analysis)
