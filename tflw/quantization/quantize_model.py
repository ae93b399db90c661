"""`quantize_model`: rewrite a Keras 3 model into its int8 quantization-aware twin.

Every tensor that TFLite-Micro will hold as int8 gets exactly one fake-quant, placed where
the TFLite converter puts the int8 tensor: after a fused ReLU/ReLU6, never between a conv
and its activation; BatchNorm folded into the preceding kernel; none after ops that keep
their input's scale (pooling max, reshape, padding, dropout). Supporting a new layer is
one entry in `layer_kinds.LAYER_KINDS` (and a builder in `LAYER_BUILDERS` if it has
weights).

```python
qat = tflw.quantize_model(model)
qat.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
qat.fit(x_train, y_train, epochs=1)
```
"""

import re
from dataclasses import dataclass
from typing import Callable, Optional

import keras
import numpy as np

from tflw.errors import UnsupportedLayerError
from tflw.pruning.wrappers import ChannelMasked, PruneLowMagnitude
from tflw.quantization.add import QuantAdd
from tflw.quantization.concatenate import QuantConcatenate
from tflw.quantization.input_link import input_quantizer
from tflw.quantization.layer_kinds import (ACTIVATION, BATCH_NORM, CONCAT, LAYER_KINDS, LINEAR,
                                           MULTIPLY, POOLED_MEAN, SAME_SCALE, activation_name,
                                           mean_of_one_pixel)
from tflw.quantization.fake_quant import FakeQuant
from tflw.quantization.folded import QuantConv2D, QuantDense, QuantDepthwiseConv2D
from tflw.quantization.hard_swish import QuantHardSwish
from tflw.quantization.low_bit import weight_quantizer
from tflw.quantization.low_bit_activations import relu6_levels_range
from tflw.quantization.multiply import QuantMultiply
from tflw.model_graph import Graph, Step, call_like, clone_layer, input_like, read_graph
from tflw.models.shift import group_shift_channels
from tflw.quantization.rescaling import fold_rescaling
from tflw.quantization.pooling import QuantAveragePooling2D, QuantGlobalAveragePooling2D

# TFLite's fixed output quantization of these activations, as (min, max) real ranges:
# int8 as below; int16 (16x8) symmetric with scale 1/32768 for all three.
FIXED_RANGES = {
    "softmax": (0.0, 255.0 / 256.0),
    "sigmoid": (0.0, 255.0 / 256.0),
    "tanh": (-1.0, 127.0 / 128.0),
}
FIXED_RANGE_16 = (-32767.0 / 32768.0, 32767.0 / 32768.0)
# What the 16x8 scheme refuses, and why (each measured with TF 2.21 / tflite-micro 2026-10).
NOT_16X8 = {
    "Multiply": "tflw does not yet reproduce TFLite-Micro's int16 MUL",
    "hard_swish": "TFLite-Micro has no int16 HARD_SWISH",
    "hard_silu": "TFLite-Micro has no int16 HARD_SWISH",
    "Concatenate": "the TFLite converter rejects a quantization-aware int16 CONCATENATION",
    "sigmoid": "the converter gives LOGISTIC an int16 output zero point of -32768, which "
               "TFLite-Micro refuses",
    "tanh": "TFLite-Micro's int16 TANH table differs from tanh by up to 5 LSB, which tflw "
            "does not reproduce",
}
FUSABLE = ("relu", "relu6")
# Activations TFLite-Micro runs as their own int8 op, output on a learned range.
OWN_RANGE_ACTIVATIONS = ("hard_silu", "hard_swish")  # Keras 3 names it hard_silu


def _spatial(config: dict) -> dict:
    """The options a Keras convolution and tflw's quantized one share."""
    return {key: config[key] for key in ("strides", "padding", "dilation_rate", "use_bias")}


def _conv2d(layer, **fold) -> list:
    config = layer.get_config()
    return [QuantConv2D(
        filters=config["filters"], kernel_size=config["kernel_size"], name=layer.name,
        groups=config.get("groups", 1), **_spatial(config), **fold,
    )]


def _depthwise_conv2d(layer, **fold) -> list:
    config = layer.get_config()
    return [QuantDepthwiseConv2D(
        kernel_size=config["kernel_size"], depth_multiplier=config["depth_multiplier"],
        name=layer.name, **_spatial(config), **fold,
    )]


def _separable_conv2d(layer, **fold) -> list:
    config = layer.get_config()
    depthwise = QuantDepthwiseConv2D(
        kernel_size=config["kernel_size"], depth_multiplier=config["depth_multiplier"],
        name=f"{layer.name}_depthwise", **{**_spatial(config), "use_bias": False},
        weight_bits=fold.get("weight_bits", 8), weight_method=fold.get("weight_method", "lsq"),
        activation_bits=fold.get("activation_bits", 8),
        shared_levels=fold.get("shared_levels", False),
    )
    pointwise = QuantConv2D(
        filters=config["filters"], kernel_size=1, use_bias=config["use_bias"],
        name=layer.name, **fold,
    )
    return [depthwise, pointwise]


def _dense(layer, **fold) -> list:
    config = layer.get_config()
    return [QuantDense(
        units=config["units"], use_bias=config["use_bias"], name=layer.name, **fold
    )]


# How a layer with weights (or its own tflw twin) is rebuilt: Keras class name -> a function
# of the layer (and, for LINEAR layers, the folding options) giving the tflw layer(s). The
# others are copied as they are; their kinds are in layer_kinds.LAYER_KINDS.
LAYER_BUILDERS = {
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise_conv2d,
    "SeparableConv2D": _separable_conv2d,
    "Dense": _dense,
    "AveragePooling2D": lambda layer: QuantAveragePooling2D.from_config(layer.get_config()),
    "SparseShift": lambda layer: layer.as_shift(),
}


@dataclass(frozen=True)
class Rule:
    """How one Keras layer is quantized: its kind (`layer_kinds`) and the function that
    builds its tflw layer(s) (`LAYER_BUILDERS`; None: a copy)."""

    kind: str
    make: Optional[Callable] = None


def _rule(layer: keras.layers.Layer) -> Rule:
    if isinstance(layer, ChannelMasked):
        raise UnsupportedLayerError(
            layer.name, "ChannelMasked",
            "channel-pruned layers are removed, not quantized: call "
            "tflw.strip_pruning(model) first, then quantize_model on the smaller model.",
        )
    name = type(_unpruned(layer)).__name__
    if name not in LAYER_KINDS:
        raise UnsupportedLayerError(
            layer.name, type(layer).__name__,
            f"no int8 quantization rule. Supported layers: {', '.join(sorted(LAYER_KINDS))}. "
            "Replace the layer, or add an entry to tflw.quantization.LAYER_KINDS.",
        )
    kind = LAYER_KINDS[name]
    if kind == POOLED_MEAN and mean_of_one_pixel(layer):
        # a range of its own would requantize what the device copies (measured: 4.9 LSB at
        # MobileNetV3-small's squeeze-excite at 32x32, where its maps are 1x1)
        kind = SAME_SCALE
    return Rule(kind, LAYER_BUILDERS.get(name))


class _Rewriter:
    """Walks the graph once, replacing each layer call by its quantized form."""

    def __init__(self, graph: Graph, weight_bits: Optional[dict] = None,
                 activation_bits: int = 8, shared_levels: bool = False):
        """`weight_bits`: {layer name: (bits, method)}, from `weight_bits_per_layer`;
        `activation_bits`: 8, 16 for TFLite's 16x8 scheme, or 2 to 7 for fused ReLUs on
        2^k levels (int8 on the device); `shared_levels`: low-bit kernels get one set of
        levels (and one int8 scale) per layer."""
        self.graph = graph
        self.tensors: dict = {}
        self.absorbed: set = set()
        self.weight_bits = weight_bits or {}
        self.activation_bits = 16 if activation_bits == 16 else 8
        self.relu_bits = activation_bits if activation_bits < 8 else None
        self.shared_levels = shared_levels

    def low_bit_relu(self, activation: str) -> tuple:
        """(activation, fixed output range) of a fused activation: a ReLU/ReLU6 on 2^k
        levels becomes ReLU6 on `relu6_levels_range`; anything else keeps a learned range."""
        if self.relu_bits is None or activation not in FUSABLE:
            return activation, None
        return "relu6", relu6_levels_range(self.relu_bits)

    def check_16x8(self, layer, what: str) -> None:
        if self.activation_bits == 16 and what in NOT_16X8:
            raise UnsupportedLayerError(
                layer.name, type(layer).__name__,
                f"not in the 16x8 scheme: {NOT_16X8[what]}. Quantize this model with "
                "activation_bits=8, or replace the layer.",
            )

    def single_consumer(self, key: int) -> Optional[Step]:
        consumers = self.graph.consumers(key)
        if len(consumers) != 1 or self.graph.is_output(key):
            return None
        return self.graph.steps[consumers[0]]

    def quantized_by_consumer(self, key: int) -> bool:
        """True when `key` reaches a Concatenate through single-consumer same-scale ops:
        the concat's shared range then quantizes it, and a second range would disagree."""
        step = self.single_consumer(key)
        while step is not None and _rule(step.layer).kind == SAME_SCALE:
            step = self.single_consumer(step.outputs[0])
        return step is not None and _rule(step.layer).kind == CONCAT

    def call(self, layer, step: Step, inputs: Optional[list] = None):
        """Call `layer` like the original node did, on the rewritten input tensors."""
        tensors = inputs if inputs is not None else [self.tensors[k] for k in step.inputs]
        return call_like(step, layer, tensors)

    def quantize(self, tensor, key: int, name: str, fixed_range=None):
        if fixed_range is None and self.quantized_by_consumer(key):
            return tensor
        if fixed_range is not None and self.activation_bits == 16:
            fixed_range = FIXED_RANGE_16
        return FakeQuant(fixed_range=fixed_range, bits=self.activation_bits,
                         name=f"{name}_quant")(tensor)

    def run(self) -> tuple:
        """Returns the new model's input and output tensors."""
        inputs = []
        for tensor, key in zip(self.graph.input_tensors, self.graph.inputs):
            new_input = input_like(tensor)
            inputs.append(new_input)
            self.tensors[key] = self.quantize(new_input, key, tensor._keras_history[0].name)
            self.share_concat_range(key)
        for index, step in enumerate(self.graph.steps):
            if index not in self.absorbed:
                made = set(self.tensors)
                self.rewrite(step)
                for key in set(self.tensors) - made:
                    self.share_concat_range(key)
        return inputs, [self.tensors[key] for key in self.graph.outputs]

    def share_concat_range(self, key: int) -> None:
        """Tie tensor `key`'s own quantizer to the range of the Concatenate it reaches
        (through same-scale ops) when it also feeds other layers: measured, the converter
        otherwise moves the tensor onto the concat's scale for every consumer, as a QUANTIZE
        after it or folded into the op that makes it, and Keras would not see that copy."""
        quantizer = input_quantizer(self.tensors[key])
        if quantizer is None or quantizer.fixed_range is not None:
            return
        if len(self.concats_reached(key)) == 1:
            quantizer.follows_consumer = True

    def concats_reached(self, key: int) -> set:
        """Indexes of the Concatenate steps that read `key`, directly or through same-scale ops."""
        found = set()
        for index in self.graph.consumers(key):
            kind = _rule(self.graph.steps[index].layer).kind
            if kind == CONCAT:
                found.add(index)
            elif kind == SAME_SCALE:
                found |= self.concats_reached(self.graph.steps[index].outputs[0])
        return found

    def rewrite(self, step: Step) -> None:
        layer = step.layer
        kind = _rule(layer).kind
        if kind == LINEAR:
            self.rewrite_linear(step)
        elif kind == BATCH_NORM:
            raise UnsupportedLayerError(
                layer.name, "BatchNormalization",
                "only a BatchNormalization right after a Conv2D/DepthwiseConv2D/"
                "SeparableConv2D/Dense (with no activation in between, and whose output "
                "feeds only this BatchNormalization) can be folded. Move it there or remove it.",
            )
        elif kind == ACTIVATION:
            self.rewrite_activation(step)
        elif kind == SAME_SCALE:
            make = _rule(layer).make or clone_layer
            self.tensors[step.outputs[0]] = self.call(make(layer), step)
        elif kind == POOLED_MEAN:
            self.rewrite_pooled_mean(step)
        elif kind == MULTIPLY:
            self.rewrite_multiply(step)
        elif kind == CONCAT:
            self.check_16x8(layer, "Concatenate")
            concat = QuantConcatenate(axis=layer.get_config()["axis"], name=layer.name,
                                      activation_bits=self.activation_bits)
            self.tensors[step.outputs[0]] = self.call(concat, step)
        elif _is_identity(layer):
            # e.g. Rescaling(1.0): TensorFlow drops it, and two fake-quants in a row left
            # the converter with a float tensor (measured), so it keeps its input's scale
            self.tensors[step.outputs[0]] = self.tensors[step.inputs[0]]
        elif type(layer).__name__ == "Add" and len(step.inputs) == 2:
            self.rewrite_add(step)
        else:  # OWN_RANGE: keep the op, quantize its output on its own range
            output = self.call(clone_layer(layer), step)
            if type(layer).__name__ == "Add":
                output, step = self.fuse_activation(output, step)
            self.tensors[step.outputs[0]] = self.quantize(output, step.outputs[0], layer.name)

    def rewrite_add(self, step: Step) -> None:
        """A two-input Add (and the ReLU/ReLU6 TFLite fuses into it) as a `QuantAdd`,
        unless a Concatenate's range quantizes its output."""
        consumer = self.single_consumer(step.outputs[0])
        activation, last = "linear", step
        if consumer is not None and _rule(consumer.layer).kind == ACTIVATION and (
                activation_name(consumer.layer) in FUSABLE):
            activation, last = activation_name(consumer.layer), consumer
        if self.quantized_by_consumer(last.outputs[0]):
            output, last = self.fuse_activation(self.call(clone_layer(step.layer), step), step)
            self.tensors[last.outputs[0]] = output
            return
        if last is not step:
            self.absorbed.add(self.graph.steps.index(last))
        activation, output_range = self.low_bit_relu(activation)
        add = QuantAdd(activation=activation, activation_bits=self.activation_bits,
                       output_range=output_range, name=step.layer.name)
        self.tensors[last.outputs[0]] = self.call(add, step)

    def rewrite_pooled_mean(self, step: Step) -> None:
        layer = step.layer
        config = layer.get_config()
        if config.get("data_format", "channels_last") != "channels_last":
            raise UnsupportedLayerError(
                layer.name, type(layer).__name__,
                "TFLite-Micro runs channels_last (NHWC) only: rebuild with "
                "data_format='channels_last'.",
            )
        if None in tuple(layer.input.shape[1:3]):
            raise UnsupportedLayerError(
                layer.name, type(layer).__name__,
                "its input has no fixed height/width; TFLite-Micro needs static shapes: "
                "give the model's Input a fixed size.",
            )
        pooled = QuantGlobalAveragePooling2D(keepdims=config.get("keepdims", False), name=layer.name,
                                             activation_bits=self.activation_bits)
        self.tensors[step.outputs[0]] = pooled(self.tensors[step.inputs[0]])

    def rewrite_multiply(self, step: Step) -> None:
        self.check_16x8(step.layer, "Multiply")
        if len(step.inputs) != 2:
            raise UnsupportedLayerError(
                step.layer.name, "Multiply",
                f"it multiplies {len(step.inputs)} tensors; TFLite-Micro's MUL takes two. "
                "Chain two-input Multiply layers instead.",
            )
        multiply = QuantMultiply(name=step.layer.name)
        self.tensors[step.outputs[0]] = self.call(multiply, step)

    def fuse_activation(self, output, step: Step):
        """Apply a following ReLU/ReLU6 before quantizing, as TFLite fuses it into ADD."""
        consumer = self.single_consumer(step.outputs[0])
        if consumer is None or _rule(consumer.layer).kind != ACTIVATION:
            return output, step
        if activation_name(consumer.layer) not in FUSABLE:
            return output, step
        self.absorbed.add(self.graph.steps.index(consumer))
        return self.call(clone_layer(consumer.layer), consumer, [output]), consumer

    def rewrite_linear(self, step: Step) -> None:
        pruned, layer = step.layer, _unpruned(step.layer)
        if layer.get_config().get("data_format", "channels_last") != "channels_last":
            raise UnsupportedLayerError(
                layer.name, type(layer).__name__,
                "TFLite-Micro runs channels_last (NHWC) only: rebuild with "
                "data_format='channels_last'.",
            )
        activation = activation_name(layer)
        batch_norm_layer, last = None, step
        if activation == "linear":
            consumer = self.single_consumer(step.outputs[0])
            if consumer is not None and _rule(consumer.layer).kind == BATCH_NORM:
                batch_norm_layer, last = consumer.layer, consumer
                self.absorbed.add(self.graph.steps.index(consumer))
                _check_batch_norm_axis(consumer.layer)
            consumer = self.single_consumer(last.outputs[0])
            if consumer is not None and activation_name(consumer.layer) in FUSABLE and (
                _rule(consumer.layer).kind == ACTIVATION
            ):
                activation, last = activation_name(consumer.layer), consumer
                self.absorbed.add(self.graph.steps.index(consumer))
        trailing = None
        if activation not in FUSABLE + ("linear",):
            trailing, activation = activation, "linear"
        quantize_output = trailing is not None or not self.quantized_by_consumer(last.outputs[0])
        output_range = None
        if quantize_output:
            activation, output_range = self.low_bit_relu(activation)
        fold = {
            "pruned": pruned is not layer,
            "batch_norm": _batch_norm_config(batch_norm_layer),
            "activation": activation,
            "quantize_output": quantize_output,
            "activation_bits": self.activation_bits,
            "output_range": output_range,
        }
        fold["weight_bits"], fold["weight_method"] = self.weight_bits.get(layer.name, (8, "lsq"))
        fold["shared_levels"] = self.shared_levels and fold["weight_bits"] < 8
        new_layers = _rule(layer).make(layer, **fold)
        tensor = self.tensors[step.inputs[0]]
        for new_layer in new_layers:
            tensor = new_layer(tensor)
        _copy_weights(layer, batch_norm_layer, new_layers)
        if pruned is not layer:
            _copy(new_layers[-1].kernel_mask, pruned.mask)
        for new_layer in new_layers:
            new_layer.initialize_low_bit()
        if trailing is not None:
            tensor = self.quantize_activation(trailing, tensor, last.outputs[0], layer)
        self.tensors[last.outputs[0]] = tensor

    def rewrite_activation(self, step: Step) -> None:
        layer = step.layer
        if activation_name(layer) in OWN_RANGE_ACTIVATIONS:
            self.check_16x8(layer, "hard_swish")
            self.tensors[step.outputs[0]] = self.call(QuantHardSwish(name=layer.name), step)
            return
        output = self.call(clone_layer(layer), step)
        self.tensors[step.outputs[0]] = self.quantize_activation(
            activation_name(layer), output, step.outputs[0], layer, applied=True
        )

    def quantize_activation(self, name: str, tensor, key: int, layer, applied: bool = False):
        if name == "linear":
            return tensor
        if name not in FIXED_RANGES and name not in FUSABLE + OWN_RANGE_ACTIVATIONS:
            raise UnsupportedLayerError(
                layer.name, type(layer).__name__,
                f"activation '{name}' has no int8 TFLite-Micro kernel tflw can match; use "
                f"one of {', '.join(FUSABLE + OWN_RANGE_ACTIVATIONS + tuple(FIXED_RANGES))}.",
            )
        self.check_16x8(layer, name)
        if name in OWN_RANGE_ACTIVATIONS:
            return QuantHardSwish(name=f"{layer.name}_{name}")(tensor)
        if not applied:
            tensor = keras.layers.Activation(name, name=f"{layer.name}_{name}")(tensor)
        return self.quantize(tensor, key, layer.name, fixed_range=FIXED_RANGES.get(name))


def _is_identity(layer: keras.layers.Layer) -> bool:
    """A Rescaling that multiplies by 1 and adds 0."""
    config = layer.get_config()
    return type(layer).__name__ == "Rescaling" and bool(
        np.all(np.asarray(config["scale"]) == 1.0) and np.all(np.asarray(config["offset"]) == 0.0))


def _unpruned(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The layer inside a `PruneLowMagnitude`; its mask is carried into the QAT layer."""
    return layer.layer if isinstance(layer, PruneLowMagnitude) else layer


def _check_batch_norm_axis(layer: keras.layers.Layer) -> None:
    axis = layer.get_config()["axis"]
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    rank = len(layer.input.shape)
    if axis not in (-1, rank - 1):
        raise UnsupportedLayerError(
            layer.name, "BatchNormalization",
            f"axis={axis} is not the channel axis; only channels-last BatchNorm folds into "
            "TFLite kernels.",
        )


def _batch_norm_config(layer) -> Optional[dict]:
    if layer is None:
        return None
    config = layer.get_config()
    return {"epsilon": config["epsilon"], "center": config["center"], "scale": config["scale"]}


def _copy(target, source) -> None:
    # A copy, not the source's buffer: on JAX, fit() donates its variables' buffers, and a
    # shared one would be deleted under the float model.
    target.assign(keras.ops.convert_to_numpy(source))


def _copy_weights(layer, batch_norm_layer, new_layers: list) -> None:
    target = new_layers[-1]
    if len(new_layers) == 2:  # SeparableConv2D: depthwise, then pointwise
        _copy(new_layers[0].kernel, layer.depthwise_kernel)
        _copy(target.kernel, layer.pointwise_kernel)
    else:
        _copy(target.kernel, layer.kernel)
    if getattr(layer, "use_bias", False):
        _copy(target.bias, layer.bias)
    if batch_norm_layer is not None:
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            if getattr(batch_norm_layer, name, None) is not None:
                _copy(getattr(target, name), getattr(batch_norm_layer, name))


def weight_bits_per_layer(graph: Graph, weight_bits: int, method: str,
                          overrides: Optional[dict]) -> dict:
    """(bits, method) for each weighted layer: `weight_bits` by `method`, except the first
    and the last (8 unless overridden: they are small and the most sensitive), and
    `overrides` by layer name, each bits or (bits, method)."""
    names = [step.layer.name for step in graph.steps if _rule(step.layer).kind == LINEAR]
    bits = {name: (weight_bits, method) for name in names}
    if names:
        bits[names[0]] = bits[names[-1]] = (8, "lsq")  # 8 bits: plain int8 for every method
    for name, value in (overrides or {}).items():
        if name not in bits:
            raise ValueError(f"layer_bits names '{name}', which is not a weighted layer of "
                             f"the model: {', '.join(names)}")
        bits[name] = tuple(value) if isinstance(value, (tuple, list)) else (value, method)
    for name, (layer_bits, layer_method) in bits.items():
        try:
            weight_quantizer(layer_method, layer_bits)
        except ValueError as error:
            raise ValueError(f"layer '{name}': {error}") from None
    return bits


def quantize_keras3(model: keras.Model, weight_bits: int = 8, method: str = "lsq",
                    layer_bits: Optional[dict] = None, activation_bits: int = 8,
                    shared_levels: bool = False) -> keras.Model:
    """Rewrite a Sequential/Functional Keras 3 model with tflw's int8 QAT layers."""
    graph = read_graph(fold_rescaling(group_shift_channels(model)))
    bits = weight_bits_per_layer(graph, weight_bits, method, layer_bits)
    inputs, outputs = _Rewriter(graph, bits, activation_bits, shared_levels).run()
    return keras.Model(
        inputs if len(inputs) > 1 else inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        # TensorFlow's name scopes (predict, export) reject names like "my model".
        name=re.sub(r"[^A-Za-z0-9_.-]", "_", model.name).lstrip("_.-") or "model",
    )
