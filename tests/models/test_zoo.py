"""Zoo models and blocks: MACs and parameters by hand, and int8 parity in TFLite-Micro."""

import keras
import numpy as np
import pytest

import tflw
from tests.conftest import randomize_batch_norms
from tflw.analysis import keras_costs
from tflw.models import (
    bottleneck,
    dilated_conv,
    ds_cnn,
    fire,
    gesture_cnn,
    inverted_residual,
    mobilenet_v1,
    mobilenet_v3_small,
    resnet8,
    resnet20,
    shift_resnet20,
    shuffle_unit,
)


def conv(out_hw: int, out_c: int, fan_in: int) -> tuple:
    """(parameters, MACs) of a conv/dense: kernel + one bias per output channel."""
    return fan_in * out_c + out_c, out_hw * out_c * fan_in


def depthwise(out_hw: int, channels: int, taps: int) -> tuple:
    return taps * channels + channels, out_hw * channels * taps


def total(*layers: tuple) -> tuple:
    return tuple(int(v) for v in np.sum(layers, axis=0))


def mobilenet_v1_costs(alpha: float) -> tuple:
    costs, side, channels = [conv(48 * 48, int(32 * alpha), 27)], 48, int(32 * alpha)
    for filters, strides in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                             *[(512, 1)] * 5, (1024, 2), (1024, 1)):
        side //= strides
        costs += [depthwise(side * side, channels, 9),
                  conv(side * side, int(filters * alpha), channels)]
        channels = int(filters * alpha)
    return total(*costs, conv(1, 2, channels))


def mobilenet_v3_small_costs(side: int) -> tuple:
    """At width 0.5 on side x side RGB: the paper's table 2 with every width halved and
    rounded to 8 (at least 8), squeeze-excite reducing to a quarter."""
    side, channels = side // 2, 16
    costs = [conv(side * side, 16, 27)]
    table = ((3, 8, 8, True, 2), (3, 40, 16, False, 2), (3, 48, 16, False, 1),
             (5, 48, 24, True, 2), (5, 120, 24, True, 1), (5, 120, 24, True, 1),
             (5, 64, 24, True, 1), (5, 72, 24, True, 1), (5, 144, 48, True, 2),
             (5, 288, 48, True, 1), (5, 288, 48, True, 1))
    for kernel, expanded, out, excite, strides in table:
        if expanded != channels:
            costs.append(conv(side * side, expanded, channels))
        side //= strides
        costs.append(depthwise(side * side, expanded, kernel * kernel))
        if excite:
            costs += [conv(1, expanded // 4, expanded), conv(1, expanded, expanded // 4)]
        costs.append(conv(side * side, out, expanded))
        channels = out
    return total(*costs, conv(side * side, 288, channels), conv(1, 1024, 288), conv(1, 2, 1024))


EXPECTED = {
    # 49x10 MFCC -> stem 10x4/2 -> 25x5x64, four 3x3 depthwise separable blocks, 12 classes
    "ds_cnn": (ds_cnn, total(conv(125, 64, 40), *[depthwise(125, 64, 9), conv(125, 64, 64)] * 4,
                              conv(1, 12, 64))),
    # 32x32x3 -> 16 -> [16, 16] -> [32/2, 32] + 1x1/2 -> [64/2, 64] + 1x1/2 -> 10
    "resnet8": (resnet8, total(conv(1024, 16, 27), conv(1024, 16, 144), conv(1024, 16, 144),
                               conv(256, 32, 144), conv(256, 32, 288), conv(256, 32, 16),
                               conv(64, 64, 288), conv(64, 64, 576), conv(64, 64, 32),
                               conv(1, 10, 64))),
    # ResNet-20: three stages of three such blocks; 1x1/2 shortcuts where the width doubles
    "resnet20": (resnet20, total(conv(1024, 16, 27), *[conv(1024, 16, 144)] * 6,
                                 conv(256, 32, 144), conv(256, 32, 16), *[conv(256, 32, 288)] * 5,
                                 conv(64, 64, 288), conv(64, 64, 32), *[conv(64, 64, 576)] * 5,
                                 conv(1, 10, 64))),
    "mobilenet_v1": (lambda: mobilenet_v1(0.25), mobilenet_v1_costs(0.25)),
    # ResNet-20's 3x3 pairs as 1x1 to 3x width, shift (free), 1x1 carrying the stride
    "shift_resnet20": (shift_resnet20, total(
        conv(1024, 16, 27), *[conv(1024, 48, 16), conv(1024, 16, 48)] * 3,
        conv(1024, 96, 16), conv(256, 32, 96), conv(256, 32, 16),
        *[conv(256, 96, 32), conv(256, 32, 96)] * 2,
        conv(256, 192, 32), conv(64, 64, 192), conv(64, 64, 32),
        *[conv(64, 192, 64), conv(64, 64, 192)] * 2, conv(1, 10, 64))),
    "mobilenet_v3_small": (lambda: mobilenet_v3_small(0.5, (64, 64, 3)),
                           mobilenet_v3_small_costs(64)),
    # 128x3 -> 5x1/2 -> 64x24 -> ds/2 32x24, ds 32x24, ds/2 16x48, ds 16x48 -> 10
    "gesture_cnn": (gesture_cnn, total(conv(64, 24, 15), depthwise(32, 24, 5), conv(32, 24, 24),
                                       depthwise(32, 24, 5), conv(32, 24, 24),
                                       depthwise(16, 24, 5), conv(16, 48, 24),
                                       depthwise(16, 48, 5), conv(16, 48, 48), conv(1, 10, 48))),
}


def blocks_model() -> keras.Model:
    """The blocks the zoo models do not already cover: a MobileNetV3 inverted residual
    (hard-swish, squeeze-excite: HARD_SWISH, MUL, LOGISTIC, MEAN keepdims), a MobileNetV2
    one, a dilated conv, a ShuffleNet unit (grouped 1x1 convs, RESHAPE/TRANSPOSE), a Fire
    module and two ResNet bottlenecks (projected and identity)."""
    inputs = keras.Input((16, 16, 8))
    x = inverted_residual(inputs, 8, expansion=4, squeeze_excite_ratio=4,
                          activation="hard_swish", name="ir")
    x = inverted_residual(x, 16, expansion=2, strides=2, name="ir_down")
    x = dilated_conv(x, 16, dilation=2)
    x = shuffle_unit(x, groups=4)
    x = fire(x, squeeze=4, expand=8)
    x = bottleneck(x, 4, strides=2, name="bneck_down")
    x = bottleneck(x, 4, name="bneck")
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x), name="blocks")


def test_published_sizes_of_the_mlperf_tiny_models():
    # MLPerf Tiny v1.0: ResNet-8 12.5 M MACs, MobileNetV1-0.25 (96x96) 7.5 M MACs
    assert EXPECTED["resnet8"][1][1] == 12_501_632
    assert round(EXPECTED["mobilenet_v1"][1][1] / 1e5) == 75
    # He et al. 2016, table 6: ResNet-20 0.27 M parameters; 41 M MACs is the usual count
    assert round(EXPECTED["resnet20"][1][0] / 1e4) == 27
    assert round(EXPECTED["resnet20"][1][1] / 1e6) == 41


def test_the_surveys_standard_against_depthwise_separable_case():
    # 8x8x3 input, 256 3x3 filters: 8*8*256*27 MACs, against 8*8*3*9 + 8*8*3*256
    inputs = keras.Input((8, 8, 3))
    standard = keras.Model(inputs, keras.layers.Conv2D(256, 3, padding="same")(inputs))
    separable = keras.Model(inputs, keras.layers.SeparableConv2D(256, 3, padding="same")(inputs))
    assert keras_costs(standard)[1] == 442_368 and keras_costs(separable)[1] == 50_880


def test_fire_and_bottleneck_costs_match_the_hand_computation():
    inputs = keras.Input((8, 8, 16))
    # squeeze 1x1 16->4, expands 1x1 4->8 and 3x3 4->8, concatenated to 16 channels
    squeezed = fire(inputs, squeeze=4, expand=8)
    assert tuple(squeezed.shape[1:]) == (8, 8, 16)
    assert keras_costs(keras.Model(inputs, squeezed)) == total(
        conv(64, 4, 16), conv(64, 8, 4), conv(64, 8, 36))
    # 1x1 16->4 at 8x8, 3x3/2 4->4 and 1x1 4->16 at 4x4, a 1x1/2 16->16 projection
    down = keras.Model(inputs, bottleneck(inputs, 4, strides=2))
    assert keras_costs(down) == total(conv(64, 4, 16), conv(16, 4, 36), conv(16, 16, 4),
                                      conv(16, 16, 16))
    # 16 channels in and out at stride 1: the identity shortcut costs nothing
    same = keras.Model(inputs, bottleneck(inputs, 4, name="same"))
    assert keras_costs(same) == total(conv(64, 4, 16), conv(64, 4, 36), conv(64, 16, 4))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_zoo_model_costs_match_the_hand_computation(name):
    build, expected = EXPECTED[name]
    assert keras_costs(build()) == expected


def trained_looking(model: keras.Model) -> keras.Model:
    """Random BatchNorm statistics and dense biases: the converter drops an all-zero
    FULLY_CONNECTED bias, which a trained model does not have."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.bias.assign(np.linspace(-0.1, 0.1, layer.units))
    return randomize_batch_norms(model)


@pytest.mark.parametrize("name", sorted(EXPECTED) + ["blocks"])
def test_zoo_model_quantizes_exports_and_matches_tflite_micro(name, tmp_path):
    build = blocks_model if name == "blocks" else EXPECTED[name][0]
    model = trained_looking(build())
    shape = tuple(model.inputs[0].shape)[1:]
    data = np.random.default_rng(0).normal(size=(24, *shape)).astype(np.float32)
    qat = tflw.quantize_model(model, calibration_data=data)
    result = tflw.export(qat, tmp_path / name, sample_inputs=data)
    assert result.verification.max_lsb_difference <= 1.001
    assert result.verification.argmax_agreement == 1.0
    assert (result.info.parameter_count, result.info.macs) == keras_costs(qat)
    if name == "blocks":
        assert {"HARD_SWISH", "MUL", "LOGISTIC", "TRANSPOSE"} <= {op.name for op in result.info.ops}
