"""Lightweight building blocks for MCU models, each one that int8 TFLite-Micro runs well.

Every block takes a tensor and returns one, so blocks chain in the Functional API:

```python
x = conv_bn_relu(inputs, 16, 3, strides=2, name="stem")
x = depthwise_separable(x, 32, name="ds1")
x = inverted_residual(x, 32, squeeze_excite_ratio=4, activation="hard_swish", name="ir1")
x = dilated_conv(x, 32, dilation=2, name="context")
x = fire(x, squeeze=8, expand=16, name="fire1")
x = bottleneck(x, 8, name="bneck1")
```

Each block is verified by `tests/models` to quantize, export and match TFLite-Micro
within 1 LSB.
"""

from typing import Optional

import keras

layers = keras.layers


def conv_bn_relu(x, filters: int, kernel_size, strides=1, dilation: int = 1,
                 activation: Optional[str] = "relu", name: str = "conv"):
    """Conv2D (no bias) -> BatchNorm -> activation (see `_activation`)."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                      dilation_rate=dilation, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return _activation(x, activation, name)


def _activation(x, activation: Optional[str], name: str):
    """None, "relu", "relu6" (fused into the conv on the device) or "hard_swish"
    (MobileNetV3's x * relu6(x + 3) / 6, TFLite-Micro's HARD_SWISH op)."""
    if activation is None:
        return x
    if activation == "relu6":
        return layers.ReLU(6.0, name=f"{name}_relu6")(x)
    if activation == "hard_swish":
        return layers.Activation("hard_swish", name=f"{name}_hard_swish")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def depthwise_separable(x, filters: int, kernel_size=3, strides=1, activation: str = "relu",
                        name: str = "ds"):
    """MobileNetV1's block: depthwise conv -> BN -> act, 1x1 conv -> BN -> act
    (Howard et al. 2017)."""
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=False,
                               name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = _activation(x, activation, f"{name}_dw")
    return conv_bn_relu(x, filters, 1, activation=activation, name=f"{name}_pw")


def squeeze_excite(x, ratio: int = 4, name: str = "se"):
    """Channel attention: x * sigmoid(W2 relu(W1 mean(x))) (Hu et al. 2018), as
    MEAN, two 1x1 convs, LOGISTIC and MUL on the device."""
    channels = int(x.shape[-1])
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = layers.Conv2D(max(1, channels // ratio), 1, activation="relu", name=f"{name}_reduce")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_expand")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def inverted_residual(x, filters: int, expansion: int = 4, strides=1, kernel_size=3,
                      squeeze_excite_ratio: Optional[int] = None, activation: str = "relu6",
                      expanded: Optional[int] = None, name: str = "ir"):
    """MobileNetV2's block (Sandler et al. 2018): 1x1 expand -> act, depthwise -> act,
    optional squeeze-excite, 1x1 linear projection; a residual add when the shapes allow.
    MobileNetV3 (Howard et al. 2019) uses activation="hard_swish" with squeeze-excite, and
    gives the expanded width itself (`expanded` channels instead of `expansion` times the
    input's; no expansion conv where it equals the input's)."""
    inputs = x
    channels = int(x.shape[-1])
    width = channels * expansion if expanded is None else expanded
    if width != channels:
        x = conv_bn_relu(x, width, 1, activation=activation, name=f"{name}_expand")
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=False,
                               name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = _activation(x, activation, f"{name}_dw")
    if squeeze_excite_ratio:
        x = squeeze_excite(x, squeeze_excite_ratio, name=f"{name}_se")
    x = conv_bn_relu(x, filters, 1, activation=None, name=f"{name}_project")
    if strides == 1 and channels == filters:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def dilated_conv(x, filters: int, kernel_size=3, dilation: int = 2, name: str = "dilated"):
    """A 3x3 conv with holes: a receptive field of 1 + 2 * dilation per side, at the cost
    of a plain 3x3 (Yu & Koltun 2016)."""
    return conv_bn_relu(x, filters, kernel_size, dilation=dilation, name=name)


def channel_shuffle(x, groups: int, name: str = "shuffle"):
    """ShuffleNet's channel shuffle: (h, w, g * c) -> (h, w, g, c) -> (h, w, c, g) ->
    (h, w, c * g), so the next grouped conv sees every group (RESHAPE, TRANSPOSE)."""
    height, width, channels = (int(d) for d in x.shape[1:])
    x = layers.Reshape((height, width, groups, channels // groups), name=f"{name}_split")(x)
    x = layers.Permute((1, 2, 4, 3), name=f"{name}_swap")(x)
    return layers.Reshape((height, width, channels), name=f"{name}_merge")(x)


def shuffle_unit(x, groups: int = 2, name: str = "shuffle_unit"):
    """ShuffleNet's unit (Zhang et al. 2018), stride 1: grouped 1x1 conv -> shuffle ->
    3x3 depthwise -> grouped 1x1 conv, added to the input."""
    channels = int(x.shape[-1])
    y = layers.Conv2D(channels, 1, groups=groups, use_bias=False, name=f"{name}_gconv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu")(y)
    y = channel_shuffle(y, groups, name=f"{name}_shuffle")
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = layers.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = layers.Conv2D(channels, 1, groups=groups, use_bias=False, name=f"{name}_gconv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def residual_block(x, filters: int, strides=1, name: str = "res"):
    """ResNet's basic block (He et al. 2016): two 3x3 convs, identity or 1x1 shortcut."""
    shortcut = x
    y = conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_a")
    y = conv_bn_relu(y, filters, 3, activation=None, name=f"{name}_b")
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, name=f"{name}_shortcut")(x)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_relu")(y)


def fire(x, squeeze: int, expand: int, name: str = "fire"):
    """SqueezeNet's Fire module (Iandola et al. 2016): a 1x1 squeeze to `squeeze`
    channels, then 1x1 and 3x3 expands of `expand` channels each, concatenated
    (2 * expand channels out; CONCATENATION on the device)."""
    s = conv_bn_relu(x, squeeze, 1, name=f"{name}_squeeze")
    e1 = conv_bn_relu(s, expand, 1, name=f"{name}_expand1")
    e3 = conv_bn_relu(s, expand, 3, name=f"{name}_expand3")
    return layers.Concatenate(name=f"{name}_concat")([e1, e3])


def bottleneck(x, filters: int, strides=1, expansion: int = 4, name: str = "bottleneck"):
    """ResNet's bottleneck block (He et al. 2016): 1x1 to `filters`, 3x3 (carrying the
    stride), 1x1 linear to `filters * expansion`, added to the input (through a 1x1
    projection where the shape changes), then ReLU."""
    out = filters * expansion
    y = conv_bn_relu(x, filters, 1, name=f"{name}_reduce")
    y = conv_bn_relu(y, filters, 3, strides=strides, name=f"{name}_conv")
    y = conv_bn_relu(y, out, 1, activation=None, name=f"{name}_expand")
    shortcut = x
    if strides != 1 or int(x.shape[-1]) != out:
        shortcut = conv_bn_relu(x, out, 1, strides=strides, activation=None,
                                name=f"{name}_shortcut")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_relu")(y)
