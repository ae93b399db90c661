"""Conv2D, DepthwiseConv2D and Dense with BatchNorm folded and activation fused, fake-quantized.

What these layers quantize is exactly what TFLite-Micro runs: the BatchNorm scale is
multiplied into the kernel *before* the kernel is fake-quantized, the BatchNorm shift goes
into the bias, and the output is quantized after the fused ReLU/ReLU6, as TFLite fuses it.

BatchNorm statistics are frozen at their float-training values during QAT (Krishnamoorthi
2018, sec. 3.2, freezes them after a short warm-up); gamma and beta still train. This keeps
one convolution per step instead of the two that batch-statistics folding needs.

```python
layer = QuantConv2D(filters=16, kernel_size=3, batch_norm={"epsilon": 1e-3},
                    activation="relu")
y = layer(x)   # conv(x, q(w * gamma / sigma)) + folded bias -> relu -> int8 fake-quant
```

References:
    Krishnamoorthi, "Quantizing deep convolutional networks for efficient inference:
    A whitepaper", arXiv:1806.08342, 2018.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional, Sequence

import keras
import numpy as np
from keras import ops

from tflw.conversion_trace import (traced_constant, tracing_for_conversion,
                                   without_device_arithmetic)
from tflw.quantization.fake_quant import FakeQuant
from tflw.quantization.input_link import LinksInputQuantizer
from tflw.quantization.integer_arithmetic import requantize, requantize_reduced, wide
from tflw.quantization.low_bit import weight_quantizer
from tflw.quantization.quantizers import fake_quant_weights, weight_scale

ACTIVATIONS = {"linear": lambda x: x, "relu": ops.relu, "relu6": ops.relu6}
_KERNELS: ContextVar = ContextVar("tflw_kernel_overrides", default={})


@contextmanager
def kernel_overrides(kernels: dict) -> Iterator[None]:
    """Within it, each layer named in `kernels` computes with `kernels[name]()` as its
    quantized kernel (block reconstruction learns soft-rounded kernels through the
    model's own layers: `tflw.ptq.brecq`)."""
    token = _KERNELS.set(kernels)
    try:
        yield
    finally:
        _KERNELS.reset(token)


class _FoldedLinear(LinksInputQuantizer, keras.layers.Layer):
    """Shared weights and fold/quantize logic; subclasses give the kernel shape and op."""

    # Axis of the folded kernel along which weights get one range each; None = per tensor.
    per_channel_axis: Optional[int] = -1

    def __init__(
        self,
        use_bias: bool = True,
        batch_norm: Optional[dict] = None,
        activation: str = "linear",
        quantize_output: bool = True,
        ema_decay: float = 0.99,
        pruned: bool = False,
        weight_bits: int = 8,
        weight_method: str = "lsq",
        activation_bits: int = 8,
        shared_levels: bool = False,
        output_range: Optional[Sequence[float]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pruned = pruned
        # A fixed output range: low-bit activations (tflw.quantization.low_bit_activations).
        self.output_range = None if output_range is None else tuple(output_range)
        self.activation_bits = activation_bits
        # One int8 scale and one set of low-bit levels for the whole kernel: export then
        # stores one LUT per tensor instead of one per channel.
        self.shared_levels = shared_levels
        if shared_levels:
            self.per_channel_axis = None
        self.weight_bits = weight_bits
        self.weight_method = weight_method
        # Below 8 bits the folded kernel snaps to at most 2^k levels per channel (see
        # tflw.quantization.low_bit) before the int8 step.
        self.low_bit_weights = weight_quantizer(weight_method, weight_bits)
        if activation not in ACTIVATIONS:
            raise ValueError(f"{self.name}: activation must be one of {sorted(ACTIVATIONS)}")
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        self.activation = activation
        self.quantize_output = quantize_output
        self.ema_decay = ema_decay
        self.output_quant = (
            FakeQuant(ema_decay=ema_decay, fixed_range=self.output_range, bits=activation_bits,
                      name="output_quant")
            if quantize_output else None
        )

    def kernel_shape(self, input_shape) -> tuple:
        raise NotImplementedError

    def output_channels(self, input_shape) -> int:
        raise NotImplementedError

    def linear(self, inputs, kernel):
        raise NotImplementedError

    def build(self, input_shape):
        channels = self.channels = self.output_channels(input_shape)
        self.kernel = self.add_weight(name="kernel", shape=self.kernel_shape(input_shape))
        if self.pruned:
            # The pruning mask, frozen: pruned weights stay exactly zero in int8.
            self.kernel_mask = self.add_weight(
                name="kernel_mask", shape=self.kernel.shape, initializer="ones", trainable=False
            )
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")
        if self.low_bit_weights is not None and self.low_bit_weights.parameter_count:
            self.weight_parameters = self.add_weight(
                name="weight_parameters", initializer="ones", shape=(
                    *self.channel_shape(tuple(self.kernel.shape)),
                    self.low_bit_weights.parameter_count),
            )
        if self.batch_norm is not None:
            bn = self.batch_norm
            if bn.get("scale", True):
                self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
            if bn.get("center", True):
                self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
            self.moving_mean = self.add_weight(
                name="moving_mean", shape=(channels,), initializer="zeros", trainable=False
            )
            self.moving_variance = self.add_weight(
                name="moving_variance", shape=(channels,), initializer="ones", trainable=False
            )

    def batch_norm_scale(self):
        """The factor per output channel the folded BatchNorm multiplies the kernel by
        (gamma / sqrt(variance + epsilon); 1 without BatchNorm)."""
        if self.batch_norm is None:
            return ops.ones((self.channels,))
        scale = ops.rsqrt(self.moving_variance + self.batch_norm.get("epsilon", 1e-3))
        return scale * self.gamma if self.batch_norm.get("scale", True) else scale

    def folded_kernel_and_bias(self):
        """The kernel and bias TFLite will hold, before quantization."""
        kernel = self.kernel * self.kernel_mask if self.pruned else self.kernel
        bias = self.bias if self.use_bias else ops.zeros((self.channels,))
        if self.batch_norm is None:
            return kernel, bias
        scale = self.batch_norm_scale()
        bias = (bias - self.moving_mean) * scale
        if self.batch_norm.get("center", True):
            bias = bias + self.beta
        return self.scale_kernel(kernel, scale), bias

    def scale_kernel(self, kernel, scale):
        return kernel * scale

    def channel_axes(self, rank: int) -> tuple:
        """Axes of the kernel that index one int8 weight range (none: per tensor)."""
        return (rank - 1,) if self.per_channel_axis is not None else ()

    def channel_shape(self, kernel_shape: tuple) -> tuple:
        """Shape of one value per int8 weight range (the low-bit parameters' leading axes)."""
        return tuple(kernel_shape[a] for a in self.channel_axes(len(kernel_shape)))

    def initialize_low_bit(self) -> None:
        """The low-bit scheme's starting parameters (an LSQ step, an APoT clipping level,
        k-means centroids) from the folded kernel, once the float weights are copied in."""
        if not hasattr(self, "weight_parameters"):
            return
        kernel = ops.convert_to_numpy(self.folded_kernel_and_bias()[0])
        self.weight_parameters.assign(self.low_bit_weights.initial_parameters(
            kernel, self.channel_axes(len(kernel.shape))))

    def low_bit(self, kernel):
        """The kernel on its low-bit levels (unchanged at 8 bits)."""
        if self.low_bit_weights is None:
            return kernel
        parameters = getattr(self, "weight_parameters", None)
        axes = self.channel_axes(len(kernel.shape))
        if tracing_for_conversion():
            return traced_constant(lambda: self.low_bit_weights(
                self.folded_kernel_and_bias()[0], parameters, axes))
        return self.low_bit_weights(kernel, parameters, axes)

    def quantized_kernel(self, kernel) -> tuple:
        """The fake-quantized kernel and its scale per output channel (or one scalar)."""
        axis, kernel = self.per_channel_axis, self.low_bit(kernel)
        return fake_quant_weights(kernel, axis=axis), weight_scale(kernel, axis=axis)

    def call(self, inputs, training=False):
        kernel, bias = self.folded_kernel_and_bias()
        if tracing_for_conversion() and self.per_channel_axis is not None:
            bias = traced_constant(lambda: _not_uniform(self.folded_kernel_and_bias()[1]))
        quantized_kernel, weight_scales = self.quantized_kernel(kernel)
        override = _KERNELS.get().get(self.name)
        if override is not None:
            quantized_kernel = override()
        accumulator = self.linear(inputs, quantized_kernel)
        outputs = ACTIVATIONS[self.activation](accumulator + bias)
        if self.output_quant is None:
            return outputs
        outputs = self.output_quant(outputs, training=training)
        input_quant = self.linked_input_quantizer()
        # Training keeps the cheaper float rounding (one int8 LSB off now and then);
        # evaluation and verify see the device's. A low-bit output trains on the device's
        # too: its fixed-point double rounding moves whole levels, and a low-bit input times
        # low-bit weights takes so few values that a channel moves at once (measured: a
        # W2A2 depthwise channel one level off everywhere after one epoch).
        if (training and self.output_range is None) or input_quant is None or (
                without_device_arithmetic()):
            return outputs
        if self.output_quant.bits == 16:
            accumulator = self.integer_accumulator(inputs, quantized_kernel, input_quant,
                                                   weight_scales)
        exact = self.integer_output(accumulator, bias, input_quant, weight_scales, self.output_quant)
        return outputs + ops.stop_gradient(exact - outputs)

    def integer_accumulator(self, inputs, quantized_kernel, input_quant: FakeQuant,
                            weight_scales):
        """The accumulator as the sum of integer codes, exact in float64 and so in any
        summation order, times s_in * s_w. At int16 a float32 input q * s is off by up to
        2^-24 of q, which int16 x int8 products turn into whole units of the sum."""
        s_in, s_w = wide(input_quant.scale()), wide(ops.cast(weight_scales, "float32"))
        codes = ops.round(wide(inputs) / s_in)
        kernel_codes = ops.round(self.scale_kernel(wide(quantized_kernel), 1.0 / s_w))
        return self.linear(codes, kernel_codes) * s_in * s_w

    def integer_output(self, accumulator, bias, input_quant: FakeQuant, weight_scales,
                       quantizer: FakeQuant):
        """The output TFLite-Micro computes: the int32 accumulator plus the int32 bias,
        rescaled to `quantizer`'s scale with its fixed-point double rounding,
        activation-clamped, as int8 (or int16: with an int32 bias, TFLite-Micro's 16x8
        kernels rescale the same way). `weight_scales` are unrounded (`weight_scale`)."""
        s_in, s_w, s_out = input_quant.scale(), ops.cast(weight_scales, "float32"), quantizer.scale()
        # Measured: the converter multiplies the unrounded input and weight scales in
        # double, stores the bias scale as float32 (sometimes one ulp below the float32
        # product) and divides in double; int16 models' biases pass float32's 24 bits.
        bias_unit = wide(ops.cast(input_quant.scale(exact=True) * wide(weight_scales), "float32"))
        total = (ops.round(wide(accumulator) / (wide(s_in) * wide(s_w)))
                 + ops.round(wide(bias) / bias_unit))
        ratio = wide(s_in) * wide(s_w) / wide(s_out)
        rescale = requantize_reduced if self.int64_bias(quantizer) else requantize
        outputs = ACTIVATIONS[self.activation](rescale(total, ratio) * s_out)
        return quantizer.quantized(outputs)

    def int64_bias(self, quantizer: FakeQuant) -> bool:
        """Whether TFLite-Micro runs this layer with an int64 bias and accumulator: at
        int16, where export stores every bias as int64 (tflw.export.int16_bias)."""
        return quantizer.bits == 16

    def requantized(self, outputs, quantizer: FakeQuant):
        """What TFLite-Micro holds for this layer's float `outputs` (possibly max-pooled)
        when a consumer's `quantizer` sets the output scale (a Concatenate's shared range);
        None when the input scale is unknown. A clamped activation stays clamped."""
        input_quant = self.linked_input_quantizer()
        if input_quant is None:
            return None
        kernel, bias = self.folded_kernel_and_bias()
        weight_scales = self.quantized_kernel(kernel)[1]
        return self.integer_output(outputs - bias, bias, input_quant, weight_scales, quantizer)

    def get_config(self):
        config = super().get_config()
        config.update(
            use_bias=self.use_bias,
            batch_norm=self.batch_norm,
            activation=self.activation,
            quantize_output=self.quantize_output,
            ema_decay=self.ema_decay,
            pruned=self.pruned,
            weight_bits=self.weight_bits,
            weight_method=self.weight_method,
            activation_bits=self.activation_bits,
            shared_levels=self.shared_levels,
            output_range=self.output_range,
        )
        return config


def _not_uniform(bias):
    """`bias`, with its first value moved by one float32 ulp when all values are equal
    and nonzero. Measured (TF 2.21): the converter folds such a bias into a splat
    constant and quantizes every channel with the first channel's scale (0.4 everywhere
    became 12466 everywhere, though channel scales differed by 4 %), 2 LSB off on the
    device. One ulp changes no int32 bias but at an exact tie."""
    values = np.array(ops.convert_to_numpy(bias), np.float32)
    if values.size > 1 and values[0] != 0 and np.all(values == values[0]):
        values[0] = np.nextafter(values[0], np.float32(np.inf))
    return values


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class _Conv(_FoldedLinear):
    """Spatial options shared by the two convolutions."""

    def __init__(self, kernel_size, strides=1, padding="valid", dilation_rate=1, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.dilation_rate = _pair(dilation_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
        )
        return config


@keras.saving.register_keras_serializable(package="tflw")
class QuantConv2D(_Conv):
    """Conv2D (+ folded BatchNorm, fused ReLU/ReLU6) with per-channel int8 weights."""

    def __init__(self, filters: int, kernel_size, groups: int = 1, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.filters = filters
        self.groups = groups

    def kernel_shape(self, input_shape):
        return (*self.kernel_size, input_shape[-1] // self.groups, self.filters)

    def output_channels(self, input_shape):
        return self.filters

    def linear(self, inputs, kernel):
        return ops.conv(
            inputs, kernel, strides=self.strides, padding=self.padding,
            dilation_rate=self.dilation_rate,
        )

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups}


@keras.saving.register_keras_serializable(package="tflw")
class QuantDepthwiseConv2D(_Conv):
    """DepthwiseConv2D (+ folded BatchNorm, fused ReLU/ReLU6) with per-channel int8 weights.

    Output channel c * multiplier + m gets its own range, as in TFLite's [1, h, w, c * m]
    depthwise kernel.
    """

    def __init__(self, kernel_size, depth_multiplier: int = 1, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.depth_multiplier = depth_multiplier

    def kernel_shape(self, input_shape):
        return (*self.kernel_size, input_shape[-1], self.depth_multiplier)

    def output_channels(self, input_shape):
        return input_shape[-1] * self.depth_multiplier

    def scale_kernel(self, kernel, scale):
        return kernel * ops.reshape(scale, ops.shape(kernel)[2:])

    def channel_axes(self, rank: int) -> tuple:
        if self.shared_levels:
            return ()
        return (2, 3)  # (channels, multiplier): one range per output channel

    def quantized_kernel(self, kernel) -> tuple:
        if self.shared_levels:
            return super().quantized_kernel(kernel)
        kernel = self.low_bit(kernel)
        h, w, channels, multiplier = ops.shape(kernel)
        flat = ops.reshape(kernel, (h, w, channels * multiplier))
        quantized = ops.reshape(fake_quant_weights(flat, axis=-1), (h, w, channels, multiplier))
        return quantized, weight_scale(flat, axis=-1)

    def linear(self, inputs, kernel):
        return ops.depthwise_conv(
            inputs, kernel, strides=self.strides, padding=self.padding,
            dilation_rate=self.dilation_rate,
        )

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}


@keras.saving.register_keras_serializable(package="tflw")
class QuantDense(_FoldedLinear):
    """Dense (+ folded BatchNorm, fused ReLU/ReLU6) with per-tensor int8 weights.

    Per-tensor because the converter rejects per-channel fake-quant on a MatMul
    ("'tfl.transpose' op has mismatched quantized axes").
    """

    per_channel_axis = None

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def kernel_shape(self, input_shape):
        return (input_shape[-1], self.units)

    def output_channels(self, input_shape):
        return self.units

    def linear(self, inputs, kernel):
        return ops.matmul(inputs, kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
