"""MCU-shaped architectures from the TinyML literature, built from `tflw.models.blocks`.

```python
model = tflw.models.ds_cnn()            # keyword spotting, 49x10 MFCC, 12 classes
model = tflw.models.resnet8()           # MLPerf Tiny image classification, CIFAR-10
model = tflw.models.resnet20()          # the low-bit literature's CIFAR-10 ResNet
model = tflw.models.mobilenet_v1(0.25)  # visual wake words, 96x96 RGB
model = tflw.models.gesture_cnn()       # 3-axis accelerometer gestures
model = tflw.models.mobilenet_v3_small(0.5)  # MobileNetV3-small at MCU scale
model = tflw.models.shift_resnet20()    # ResNet-20 with shift instead of 3x3 convolutions
```

All output logits (no softmax) and are plain Functional Keras 3 models.
"""

from typing import Union

import keras

from tflw.models.blocks import (conv_bn_relu, depthwise_separable, inverted_residual,
                                residual_block)
from tflw.models.shift import shift_residual_block

layers = keras.layers


def _head(x, classes: int, dropout: float):
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(classes, name="logits")(x)


def ds_cnn(input_shape=(49, 10, 1), classes: int = 12, filters: int = 64,
           blocks: int = 4, dropout: float = 0.2) -> keras.Model:
    """DS-CNN (Zhang et al., "Hello Edge", 2017), the MLPerf Tiny keyword-spotting model:
    a 10x4 stride-2 conv over the MFCC map, then depthwise separable blocks."""
    inputs = keras.Input(input_shape, name="mfcc")
    x = conv_bn_relu(inputs, filters, (10, 4), strides=2, name="stem")
    for index in range(blocks):
        x = depthwise_separable(x, filters, name=f"ds{index + 1}")
    return keras.Model(inputs, _head(x, classes, dropout), name="ds_cnn")


def resnet8(input_shape=(32, 32, 3), classes: int = 10) -> keras.Model:
    """ResNet-8, the MLPerf Tiny image-classification model (CIFAR-10): a 16-filter stem
    and three basic blocks of 16, 32 and 64 filters, the last two with stride 2."""
    return _cifar_resnet(1, input_shape, classes, "resnet8")


def shift_resnet20(input_shape=(32, 32, 3), classes: int = 10, expansion: int = 3,
                   sparse: Union[bool, float] = False) -> keras.Model:
    """ShiftResNet-20 (Wu et al. 2018): ResNet-20 with each basic block's two 3x3
    convolutions replaced by 1x1 (to `expansion` times the width), shift, 1x1
    (`tflw.models.shift.shift_residual_block`); `sparse` (True, or an L1 weight): learned
    moves (Sparse Shift, Chen et al. 2019) instead of ShiftNet's fixed ones."""
    def block(x, filters, strides, name):
        return shift_residual_block(x, filters, strides, expansion, sparse, name=name)
    name = f"{'sparse_' if sparse else ''}shift_resnet20_e{expansion}"
    return _cifar_resnet(3, input_shape, classes, name, block)


def resnet20(input_shape=(32, 32, 3), classes: int = 10) -> keras.Model:
    """ResNet-20 (He et al. 2016, sec. 4.2), the CIFAR-10 network of the low-bit
    literature (LSQ, APoT, EWGS): a 16-filter stem and three stages of three basic blocks
    of 16, 32 and 64 filters, the last two stages starting with stride 2; 0.27 M
    parameters."""
    return _cifar_resnet(3, input_shape, classes, "resnet20")


def _cifar_resnet(blocks: int, input_shape, classes: int, name: str,
                  make_block=residual_block) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_relu(inputs, 16, 3, name="stem")
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            strides = 2 if stage and not block else 1
            suffix = f"{stage + 1}" if blocks == 1 else f"{stage + 1}_{block + 1}"
            x = make_block(x, filters, strides, name=f"stack{suffix}")
    return keras.Model(inputs, _head(x, classes, 0.0), name=name)


# MobileNetV1's 13 depthwise separable layers: (filters at alpha=1, stride).
_MOBILENET_V1 = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                 (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1(alpha: float = 0.25, input_shape=(96, 96, 3), classes: int = 2,
                 dropout: float = 0.1) -> keras.Model:
    """MobileNetV1 (Howard et al. 2017) at width `alpha`; alpha 0.25 on 96x96 RGB with two
    classes is the MLPerf Tiny visual-wake-words model."""
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_relu(inputs, int(32 * alpha), 3, strides=2, name="stem")
    for index, (filters, strides) in enumerate(_MOBILENET_V1):
        x = depthwise_separable(x, int(filters * alpha), strides=strides, name=f"ds{index + 1}")
    return keras.Model(inputs, _head(x, classes, dropout), name=f"mobilenet_v1_{alpha:g}")


# MobileNetV3-small (Howard et al. 2019, table 2): kernel, expanded, out, squeeze-excite,
# activation, stride per bottleneck, after a 16-filter 3x3/2 hard-swish stem.
_MOBILENET_V3_SMALL = ((3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2),
                       (3, 88, 24, False, "relu", 1), (5, 96, 40, True, "hard_swish", 2),
                       (5, 240, 40, True, "hard_swish", 1), (5, 240, 40, True, "hard_swish", 1),
                       (5, 120, 48, True, "hard_swish", 1), (5, 144, 48, True, "hard_swish", 1),
                       (5, 288, 96, True, "hard_swish", 2), (5, 576, 96, True, "hard_swish", 1),
                       (5, 576, 96, True, "hard_swish", 1))


def _divisible(channels: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: to a multiple of `divisor`, never 10 % below."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def mobilenet_v3_small(alpha: float = 0.5, input_shape=(96, 96, 3), classes: int = 2,
                       last_channels: int = 1024, dropout: float = 0.2) -> keras.Model:
    """MobileNetV3-small (Howard et al. 2019) at width `alpha` (channels rounded to 8, the
    16-filter stem kept), hard-swish and squeeze-excite as in the paper's table 2, and
    its efficient last stage: 1x1 conv to 6x the last width, global pooling, a 1x1 conv
    to `last_channels` without BatchNorm, hard-swish, the classifier."""
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_relu(inputs, 16, 3, strides=2, activation="hard_swish", name="stem")
    for index, (kernel, expanded, out, excite, activation, strides) in enumerate(
            _MOBILENET_V3_SMALL):
        x = inverted_residual(x, _divisible(out * alpha), strides=strides, kernel_size=kernel,
                              squeeze_excite_ratio=4 if excite else None,
                              activation=activation, expanded=_divisible(expanded * alpha),
                              name=f"bneck{index + 1}")
    x = conv_bn_relu(x, _divisible(576 * alpha), 1, activation="hard_swish", name="last")
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Conv2D(last_channels, 1, name="head")(x)
    x = layers.Activation("hard_swish", name="head_hard_swish")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x),
                       name=f"mobilenet_v3_small_{alpha:g}")


def gesture_cnn(steps: int = 128, axes: int = 3, classes: int = 10, filters: int = 24,
                kernel: int = 5, dropout: float = 0.1) -> keras.Model:
    """A depthwise separable 1D CNN for accelerometer windows of `steps` x `axes`.

    The 1D convolutions are written as (kernel x 1) 2D ones over a (steps, 1, axes) view:
    that is how TFLite runs Conv1D anyway, and tflw's int8 layers are 2D. Strides are
    square: TensorFlow's depthwise conv needs equal strides, and on the width-1 axis a
    'same'-padded stride of 2 still gives width 1."""
    inputs = keras.Input((steps, axes), name="accel")
    x = layers.Reshape((steps, 1, axes), name="as_image")(inputs)
    x = conv_bn_relu(x, filters, (kernel, 1), strides=2, name="stem")
    for index, strides in enumerate((2, 1, 2, 1)):
        width = filters * (2 if index >= 2 else 1)
        x = depthwise_separable(x, width, kernel_size=(kernel, 1), strides=strides,
                                name=f"ds{index + 1}")
    return keras.Model(inputs, _head(x, classes, dropout), name="gesture_cnn")
