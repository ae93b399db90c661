import keras
import numpy as np

from tflw.ptq.equalization import _ranges, equalization_pairs, equalize


def _model() -> keras.Model:
    """conv-BN-ReLU, depthwise-BN-ReLU, 1x1 conv-BN-ReLU6 (not equalized past the ReLU6),
    max pool, conv (ReLU in the layer), global pool, dense-ReLU, dense: channel ranges
    spread over orders of magnitude."""
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(8, 1, use_bias=False)(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(12, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(16, activation="relu")(x)
    model = keras.Model(inputs, layers.Dense(5)(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 2, variance.shape)])
        elif layer.weights:
            kernel = layer.get_weights()[0]
            spread = 10.0 ** rng.uniform(-2, 1, kernel.shape[-1] if not isinstance(
                layer, layers.DepthwiseConv2D) else kernel.shape[-2])
            weights = layer.get_weights()
            weights[0] = kernel * (spread if not isinstance(layer, layers.DepthwiseConv2D)
                                   else spread[:, None])
            layer.set_weights(weights)
    return model


def test_equalization_keeps_the_float_function_and_equalizes_each_pair():
    model = _model()
    x = np.random.default_rng(1).normal(size=(64, 16, 16, 3)).astype(np.float32)
    equalized, pairs = equalize(model)
    assert [(a.split("_")[0], b.split("_")[0]) for a, b in pairs] == [
        ("conv2d", "depthwise"), ("depthwise", "conv2d"), ("conv2d", "dense"), ("dense", "dense")]
    before, after = model.predict(x, verbose=0), equalized.predict(x, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5 * np.abs(before).max())
    for pair in equalization_pairs(equalized)[1:]:  # the first pair's ranges move again after
        r1, r2 = _ranges(pair)
        np.testing.assert_allclose(r1, r2, rtol=1e-2)
    depthwise = equalization_pairs(model)[1]
    r1, _ = _ranges(depthwise)
    r1_after, _ = _ranges(equalization_pairs(equalized)[1])
    spread, spread_after = r1.max() / r1.min(), r1_after.max() / r1_after.min()
    assert spread > 20 and spread_after < 0.7 * spread
    assert model.get_layer(depthwise.first.name) is depthwise.first  # the model given is kept
