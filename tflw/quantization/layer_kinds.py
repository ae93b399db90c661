"""Which Keras layers tflw quantizes, and how each one's output becomes int8: the table.

Pure data about Keras layer classes, importing none of tflw's layers, so that those layers
can read it too (a quantized layer looks through scale-keeping layers for its input's
scale). How a layer with weights is rebuilt is in `quantize_model.LAYER_BUILDERS`.

```python
LAYER_KINDS["MaxPooling2D"]          # 'same_scale': the output keeps the input's scale
keeps_input_scale(keras.layers.Flatten())   # True
```
"""

import keras

# Kinds: how a layer's output tensor is quantized.
LINEAR = "linear"            # weights: fold BN, fuse ReLU, fake-quant kernel and output
BATCH_NORM = "batch_norm"    # only as part of a LINEAR group
ACTIVATION = "activation"    # fused into the producer when it can be, else own range
OWN_RANGE = "own_range"      # the op rescales: its output gets its own learned range
SAME_SCALE = "same_scale"    # output keeps the input's scale: no quantizer
CONCAT = "concat"            # one range shared by every input and the output
POOLED_MEAN = "pooled_mean"  # own output range; rounds like TFLM's MEAN
MULTIPLY = "multiply"        # own output range; rounds like TFLM's MUL

# Keras layer class name -> kind. Supporting a new layer is one entry here (and, for a
# layer with weights, a builder in quantize_model.LAYER_BUILDERS).
LAYER_KINDS = {
    "Conv2D": LINEAR,
    "DepthwiseConv2D": LINEAR,
    "SeparableConv2D": LINEAR,
    "Dense": LINEAR,
    "BatchNormalization": BATCH_NORM,
    "ReLU": ACTIVATION,
    "Activation": ACTIVATION,
    "Softmax": ACTIVATION,
    "Add": OWN_RANGE,
    "Multiply": MULTIPLY,
    "AveragePooling2D": SAME_SCALE,
    "GlobalAveragePooling2D": POOLED_MEAN,
    "Rescaling": OWN_RANGE,
    "Normalization": OWN_RANGE,
    "Concatenate": CONCAT,
    "MaxPooling2D": SAME_SCALE,
    "Flatten": SAME_SCALE,
    "Reshape": SAME_SCALE,
    "Permute": SAME_SCALE,
    "ZeroPadding2D": SAME_SCALE,
    "Shift": SAME_SCALE,  # tflw.models.shift: PAD, STRIDED_SLICE, CONCATENATION of one tensor
    "SparseShift": SAME_SCALE,  # becomes the Shift of its rounded moves
    "Dropout": SAME_SCALE,
}


def activation_name(layer: keras.layers.Layer) -> str:
    """The activation a layer applies, as a name ('linear', 'relu', 'relu6', 'softmax', ...)."""
    config = layer.get_config()
    if type(layer).__name__ == "Softmax":
        return "softmax"
    if type(layer).__name__ == "ReLU":
        plain = not config.get("negative_slope") and not config.get("threshold")
        if plain and config.get("max_value") is None:
            return "relu"
        if plain and config.get("max_value") == 6:
            return "relu6"
        return "custom ReLU"
    activation = config.get("activation", "linear")
    return activation if isinstance(activation, str) else "custom"


def keeps_input_scale(layer: keras.layers.Layer) -> bool:
    """A same-scale layer, or an identity left in the graph: a linear Activation, or a
    global mean over a single pixel."""
    kind = LAYER_KINDS.get(type(layer).__name__)
    return (kind == SAME_SCALE or (kind == ACTIVATION and activation_name(layer) == "linear")
            or (kind == POOLED_MEAN and mean_of_one_pixel(layer)))


def mean_of_one_pixel(layer: keras.layers.Layer) -> bool:
    """A global average pooling whose input is 1x1: the converter drops it (or leaves a
    RESHAPE or a MEAN of one value), and the tensor keeps its input's scale."""
    return tuple(layer.input.shape[1:3]) == (1, 1)
