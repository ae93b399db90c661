import keras
import numpy as np
import pytest

import tflw
from tflw.ptq.adaround import adaround_layer, rounding_grid
from tflw.ptq.layer_inputs import layer_inputs, linear_layers


@pytest.mark.parametrize("bits, qdrop", [(8, 0.0), (4, 0.5)])
def test_adaround_ends_on_the_grid_and_never_above_nearest_rounding(trained_demo_w8, mnist,
                                                                    bits, qdrop):
    (x, _), _ = mnist
    data = x[:256]
    qat = tflw.quantize_model(trained_demo_w8, weight_bits=bits, calibration_data=data)
    gains = []
    for layer in linear_layers(qat):
        inputs = layer_inputs(qat, layer, data)
        unquantized = layer_inputs(qat, layer, data, quantized=False) if qdrop else None
        if unquantized is not None and layer is not linear_layers(qat)[0]:  # (pixels)
            # the same activations, before their int8 rounding
            assert len(np.unique(unquantized)) > 10 * len(np.unique(inputs))
            assert np.abs(unquantized - inputs).max() < 0.1 * np.abs(inputs).max()
        nearest, learned = adaround_layer(layer, inputs, iterations=100,
                                          unquantized_inputs=unquantized, drop=qdrop)
        assert learned <= nearest
        gains.append(learned / max(nearest, 1e-12))
        kernel = keras.ops.convert_to_numpy(layer.folded_kernel_and_bias()[0])
        step, levels = rounding_grid(layer)
        codes = kernel / step
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # hard: on the grid
        assert np.abs(np.round(codes)).max() <= levels
    assert np.mean(gains) < 0.9  # learned rounding reconstructs better than nearest


def test_4_bit_adaround_ptq_is_bit_exact_in_tflite_micro(trained_demo_w8, mnist, tmp_path):
    (x, _), (x_test, _) = mnist
    quantized = tflw.ptq(trained_demo_w8, x[:128], weight_bits=4, rounding="adaround",
                         iterations=50)
    result = tflw.export(quantized, tmp_path / "w4", sample_inputs=x_test[:100],
                         compress="always")
    assert result.verification.max_lsb_difference <= 1.001 and result.report["lut"]["written"]
