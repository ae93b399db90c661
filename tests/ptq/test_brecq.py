import keras
import numpy as np

import tflw
from tflw.ptq.adaround import rounding_grid
from tflw.ptq.layer_inputs import linear_layers
from tflw.ptq.brecq import blocks, brecq_block, walk_blocks


def test_blocks_keep_a_residual_block_whole_and_cut_a_chain_between_layers():
    model = tflw.quantize_model(tflw.models.resnet8())
    assert [[layer.name for layer in block.layers] for block in blocks(model)] == [
        ["stem_conv"], ["stack1_a_conv", "stack1_b_conv"],
        ["stack2_a_conv", "stack2_shortcut", "stack2_b_conv"],
        ["stack3_a_conv", "stack3_shortcut", "stack3_b_conv"], ["logits"]]


def test_brecq_rounds_each_block_on_its_grid_and_never_above_nearest(trained_demo_w8, mnist,
                                                                     tmp_path):
    (x, _), (x_test, _) = mnist
    data = x[:256]
    qat = tflw.quantize_model(trained_demo_w8, weight_bits=4, calibration_data=data)
    float_kernels = {layer.name: keras.ops.convert_to_numpy(layer.folded_kernel_and_bias()[0])
                     for layer in linear_layers(qat)}
    ratios = []
    for block, inputs, target in walk_blocks(qat, data, blocks(qat), float_kernels):
        nearest, learned = brecq_block(block, inputs, target, iterations=60)
        assert learned <= nearest
        ratios.append(learned / nearest)
        for layer in block.layers:
            codes = keras.ops.convert_to_numpy(layer.folded_kernel_and_bias()[0]) / (
                rounding_grid(layer)[0])
            np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
    assert min(ratios) < 0.9  # some block reconstructs clearly better than nearest
    result = tflw.export(qat, tmp_path / "w4", sample_inputs=x_test[:100], compress="always")
    assert result.verification.max_lsb_difference <= 1.001
