import gzip

import keras
import numpy as np
import pytest

import tflw
from tests.conftest import randomize_batch_norms
from tflw.errors import UnsupportedLayerError
from tflw.export.convert import to_tflite
from tflw.export.flatbuffer import read_flatbuffer
from tflw.pruning import ChannelMasked, PruneLowMagnitude, layer_sparsity, pruned_layers


def residual_model() -> keras.Model:
    """Conv/BN/ReLU, a depthwise branch joined by an Add, a conv, pooling and a classifier."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 10, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.Conv2D(8, 1, use_bias=False, name="project")(y)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.Conv2D(16, 3, activation="relu", name="head")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, name="classifier")(x)
    return randomize_batch_norms(keras.Model(inputs, outputs))


def data(count=128):
    rng = np.random.default_rng(1)
    return rng.normal(size=(count, 10, 10, 4)).astype("float32"), rng.integers(0, 5, count)


def train(model, steps=12):
    x, y = data()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model.fit(x, y, batch_size=len(x) // steps, epochs=1, verbose=0,
                     callbacks=[tflw.UpdatePruningStep()])


def test_unstructured_masks_reach_the_target_at_end_step():
    pruned = tflw.prune_model(residual_model(), tflw.PolynomialDecay(0.0, 0.7, 0, 10, frequency=2))
    history = train(pruned)
    layers = pruned_layers(pruned)
    assert {layer.name for layer in layers} == {"dw", "project", "head"}
    for layer in layers:
        assert layer_sparsity(layer) == pytest.approx(0.7, abs=0.01)
        assert history.history[f"sparsity/{layer.name}"][-1] == pytest.approx(0.7, abs=0.01)


def test_default_skips_first_layer_and_classifier():
    assert tflw.pruning.default_skipped(residual_model()) == ["classifier", "stem"]


def test_two_four_pattern_holds_in_every_group_of_four():
    pruned = tflw.prune_model(residual_model(), tflw.ConstantSparsity(0.5, 0, frequency=3),
                              structure="2:4")
    train(pruned)
    for layer in pruned_layers(pruned):
        kernel = keras.ops.convert_to_numpy(layer.layer.kernel) * keras.ops.convert_to_numpy(layer.mask)
        groups = np.moveaxis(kernel, -2, -1).reshape(-1, 4)
        assert np.all((groups != 0).sum(-1) <= 2)
        assert np.mean((groups != 0).sum(-1) == 2) > 0.99


def test_n_m_needs_input_channels_divisible_by_m():
    with pytest.raises(UnsupportedLayerError, match="project.*multiple of M=3"):
        tflw.prune_model(residual_model(), tflw.ConstantSparsity(0.5), structure="1:3")


def test_global_scope_prunes_to_one_threshold():
    pruned = tflw.prune_model(residual_model(), tflw.ConstantSparsity(0.6, 0, frequency=4),
                              scope="global", skip=[])
    train(pruned)
    layers = pruned_layers(pruned)
    total = sum(int(np.prod(l.mask.shape)) for l in layers)
    zeros = sum(layer_sparsity(l) * int(np.prod(l.mask.shape)) for l in layers)
    assert zeros / total == pytest.approx(0.6, abs=0.01)
    assert len({round(layer_sparsity(l), 2) for l in layers}) > 1  # not the same per layer


def test_channel_pruning_strips_to_a_smaller_model_with_the_same_function():
    model = residual_model()
    pruned = tflw.prune_model(model, tflw.ConstantSparsity(0.5, 0, frequency=4),
                              structure="channels", skip=["classifier"])
    train(pruned)
    masks = [l for l in pruned_layers(pruned) if isinstance(l, ChannelMasked)]
    assert {l.group for l in masks} == {"stem", "head"}  # stem and project are tied by the Add
    small = tflw.strip_pruning(pruned)
    x, _ = data(32)
    np.testing.assert_allclose(small.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)
    assert small.count_params() < 0.6 * model.count_params()
    assert small.get_layer("stem").kernel.shape[-1] == 4
    assert small.get_layer("head").kernel.shape == (3, 3, 4, 8)
    float_macs = read_flatbuffer(to_tflite(tflw.quantize_model(model, x))).macs
    small_macs = read_flatbuffer(to_tflite(tflw.quantize_model(small, x))).macs
    assert small_macs < 0.5 * float_macs


def test_sparsity_survives_qat_into_the_flatbuffer_and_keeps_parity():
    pruned = tflw.prune_model(residual_model(), tflw.ConstantSparsity(0.75, 0, frequency=4))
    train(pruned)
    x, y = data()
    qat = tflw.quantize_model(pruned, calibration_data=x)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, epochs=1, verbose=0)
    model_bytes = to_tflite(qat)
    by_op = [op for op in read_flatbuffer(model_bytes).operators if op.weights]
    sparsities = [op.zero_weights / op.weights for op in by_op]
    # the stem and the classifier stay dense; the three pruned layers are at 75 %.
    assert sorted(round(s, 2) for s in sparsities)[-3:] == [0.75, 0.75, 0.75]
    assert len(gzip.compress(model_bytes)) < 0.75 * len(model_bytes)
    assert tflw.verify(model_bytes, x, reference=qat).parity


def test_stripped_channel_pruned_model_quantizes_and_keeps_parity():
    pruned = tflw.prune_model(residual_model(), tflw.ConstantSparsity(0.5, 0, frequency=4),
                              structure="channels", skip=[])
    train(pruned)
    with pytest.raises(UnsupportedLayerError, match="strip_pruning"):
        tflw.quantize_model(pruned)
    x, _ = data()
    qat = tflw.quantize_model(tflw.strip_pruning(pruned), calibration_data=x)
    assert tflw.verify(to_tflite(qat), x, reference=qat).parity


def test_pruned_model_round_trips_through_keras_file(tmp_path):
    pruned = tflw.prune_model(residual_model(), tflw.ConstantSparsity(0.5, 0, frequency=4))
    train(pruned)
    pruned.save(tmp_path / "pruned.keras")
    restored = keras.saving.load_model(tmp_path / "pruned.keras")
    x, _ = data(16)
    np.testing.assert_allclose(restored.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6)
    assert isinstance(restored.get_layer("project"), PruneLowMagnitude)


def test_channel_pruning_keeps_grouped_convolutions_whole():
    from tflw.models import conv_bn_relu, shuffle_unit

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 8))
    x = conv_bn_relu(inputs, 16, 3, name="stem")
    x = conv_bn_relu(x, 16, 3, name="mid")
    x = keras.layers.GlobalAveragePooling2D()(shuffle_unit(x, groups=4, name="unit"))
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    pruned = tflw.prune_model(model, tflw.ConstantSparsity(0.5), structure="channels",
                              skip=["head"])
    data = np.random.default_rng(0).normal(size=(16, 12, 12, 8)).astype("float32")
    pruned.compile("adam", "mse")
    pruned.fit(data, np.zeros((16, 4)), epochs=1, verbose=0, callbacks=[tflw.UpdatePruningStep()])
    stripped = tflw.strip_pruning(pruned)
    assert stripped.get_layer("stem_conv").kernel.shape[-1] == 8   # free to shrink
    assert stripped.get_layer("mid_conv").kernel.shape[-1] == 16   # feeds the grouped conv
    assert stripped.get_layer("unit_gconv1").kernel.shape == (1, 1, 4, 16)
