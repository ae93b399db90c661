import keras
import numpy as np
import pytest

import tflw
from tests.conftest import all_layers_model, randomize_biases
from tflw.quantization.rescaling import fold_rescaling

RNG = np.random.default_rng(0)


def _model(scale, offset, layer: keras.layers.Layer, shape=(6, 6, 3)) -> keras.Model:
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(scale, offset, name="rescaling")(inputs)
    return keras.Model(inputs, layer(x))


def _randomized(model: keras.Model) -> keras.Model:
    for layer in model.layers:
        layer.set_weights([RNG.normal(0, 0.5, w.shape).astype("float32")
                           for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("scale, offset, layer", [
    (1 / 255.0, 0.0, keras.layers.Conv2D(4, 3, padding="same")),  # zero padding: no offset
    ([0.5, 2.0, -1.0], [0.1, -0.2, 0.3], keras.layers.Conv2D(4, 3)),
    ([0.5, 2.0, -1.0], [0.1, -0.2, 0.3], keras.layers.DepthwiseConv2D(3, depth_multiplier=2)),
    (0.25, -1.0, keras.layers.Dense(5)),
])
def test_a_rescaling_before_a_linear_layer_folds_into_it_exactly(scale, offset, layer):
    model = _randomized(_model(scale, offset, layer))
    folded = fold_rescaling(model)
    assert "rescaling" not in [l.name for l in folded.layers]
    x = RNG.uniform(0, 255, (8, 6, 6, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(folded(x), expected, rtol=0, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("scale, offset, layer", [
    (0.5, 1.0, keras.layers.Conv2D(4, 3, padding="same")),  # padded zeros take no offset
    (0.5, 1.0, keras.layers.Conv2D(4, 3, use_bias=False)),  # nowhere to put the offset
    (0.5, 0.0, keras.layers.BatchNormalization()),
    (np.full((6, 6, 3), 0.5), 0.0, keras.layers.Conv2D(4, 3)),  # per pixel
])
def test_a_rescaling_that_cannot_fold_exactly_stays(scale, offset, layer):
    model = _randomized(_model(scale, offset, layer))
    assert fold_rescaling(model) is model


def test_a_quantized_model_has_no_mul_for_its_rescaling_and_the_converters_flash(tmp_path):
    model = randomize_biases(all_layers_model())  # Rescaling(1 / 255), then a convolution
    pixels = RNG.uniform(0, 255, (64, 12, 12, 3)).astype("float32")
    quantized = tflw.ptq(model, pixels)
    assert not any(type(layer).__name__ == "Rescaling" for layer in quantized.layers)
    result = tflw.export(quantized, tmp_path / "ptq", sample_inputs=pixels[:16])
    assert "MUL" not in [op.name for op in result.info.operators]
    assert result.verification.max_lsb_difference <= 1.001
    converter = tflw.export(model, tmp_path / "converter", representative_data=pixels,
                            sample_inputs=pixels[:16])
    assert result.flatbuffer_bytes <= converter.flatbuffer_bytes
    assert result.arena_bytes <= converter.arena_bytes
