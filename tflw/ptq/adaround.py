"""AdaRound: learn, per weight, whether to round up or down, so that the layer's output
on calibration data stays closest to the float kernel's (Nagel et al., "Up or Down?
Adaptive Rounding for Post-Training Quantization", ICML 2020).

Rounding to nearest minimizes each weight's own error, not the layer's: errors that
cancel over the inputs matter more. Each weight w = s (floor(w / s) + h(V)) with h a
rectified sigmoid of a learned V, trained on ||x W_soft - x W||^2 plus a regularizer
that pushes every h to 0 or 1 as its exponent anneals from 20 to 2; at the end each h is
rounded (up where V >= 0), so the kernel sits exactly on its grid: the int8 grid of its
per-channel scale, or at 2 to 7 bits the LSQ grid of its step. Written with Keras
layers and `fit`, so it runs on any backend.

```python
loss_nearest, loss_adaround = adaround_layer(layer, inputs)   # one quantized layer
```
"""

import logging
from typing import Optional, Tuple

import keras
import numpy as np
from keras import ops

ZETA, GAMMA = 1.1, -0.1
# 250 per layer or block: with equalization, within 1.5 points of float at 4 bits on the
# benchmark's three models for less than one QAT epoch; 1,000 cost 1.1-2.1 QAT epochs
ITERATIONS = 250
WARMUP = 0.2  # the share of iterations trained on the reconstruction alone
REGULARIZATION = 0.01
BETA_START, BETA_END = 20.0, 2.0


def numpy_of(value) -> np.ndarray:
    """A tensor or variable as a float32 array."""
    return np.asarray(ops.convert_to_numpy(value), np.float32)


def rectified_sigmoid(v):
    return ops.clip(ops.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def rounding_grid(layer) -> Tuple[np.ndarray, float]:
    """(the step of every kernel element's grid, the largest level): the int8 grid of
    the layer's per-channel (or per-tensor) scale, or its LSQ step below 8 bits."""
    kernel = layer.folded_kernel_and_bias()[0]
    if layer.low_bit_weights is None:
        step, levels = layer.quantized_kernel(kernel)[1], 127.0
    else:
        step = layer.weight_parameters[..., 0]
        levels = 2.0 ** (layer.weight_bits - 1) - 1.0
    ones = ops.ones(ops.shape(kernel))  # JAX makes no ones_like of a Variable
    return numpy_of(layer.scale_kernel(ones, ops.cast(step, "float32"))), levels


def soft_start(kernel: np.ndarray, step: np.ndarray) -> np.ndarray:
    """V where h(V) is each weight's distance above its lower grid point (in steps): the
    soft kernel starts at the float one."""
    rest = np.clip(kernel / step - np.floor(kernel / step), 1e-4, 1 - 1e-4)
    return -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0)


class AnnealedRounding(keras.layers.Layer):
    """Base of the rounding layers: AdaRound's regularizer on their V variables, held off
    for the warm-up, then with its exponent annealed 20 -> 2. Computed in the graph from
    a step counter, so that `fit` can run many steps per call."""

    def __init__(self, iterations: int, regularization: float, **kwargs):
        super().__init__(**kwargs)
        self.iterations, self.regularization = float(iterations), regularization
        self.step = self.add_weight(name="step", shape=(), trainable=False, initializer="zeros")

    def add_regularizer(self, vs, training) -> None:
        progress = self.step / self.iterations
        annealed = ops.clip((progress - WARMUP) / (1.0 - WARMUP), 0.0, 1.0)
        beta = BETA_END + 0.5 * (BETA_START - BETA_END) * (1.0 + ops.cos(np.pi * annealed))
        weight = ops.where(progress >= WARMUP, self.regularization, 0.0)
        self.add_loss(weight * sum(ops.sum(1.0 - ops.power(ops.abs(2.0 * rectified_sigmoid(v)
                                                                   - 1.0), beta)) for v in vs))
        if training:
            self.step.assign(self.step + 1.0)


class _SoftRounding(AnnealedRounding):
    """The layer's output with each weight rounded by h(V) between its two grid points.
    With `drop` (QDrop) it takes (quantized, unquantized) inputs, swaps each quantized
    element for its unquantized value with probability `drop`, and gives the difference
    from its output with the float kernel on the same mixed inputs."""

    def __init__(self, layer, kernel: np.ndarray, step: np.ndarray, levels: float,
                 drop: float, seed: int, iterations: int, regularization: float, **kwargs):
        super().__init__(iterations, regularization, **kwargs)
        # The bound method, not the layer: the layer's own variables stay out of training.
        self.linear, self.levels, self.drop = layer.linear, levels, drop
        self.float_kernel = ops.convert_to_tensor(kernel)
        self.seeds = keras.random.SeedGenerator(seed)
        self.grid_step = ops.convert_to_tensor(step)
        self.floor = ops.convert_to_tensor(np.floor(kernel / step))
        self.v = self.add_weight(name="v", shape=kernel.shape,
                                 initializer=keras.initializers.Constant(soft_start(kernel, step)))

    def kernel(self):
        levels = ops.clip(self.floor + rectified_sigmoid(self.v), -self.levels, self.levels)
        return self.grid_step * levels

    def call(self, inputs, training=None):
        self.add_regularizer([self.v], training)
        if self.drop == 0.0:
            return self.linear(inputs, self.kernel())
        quantized, unquantized = inputs
        keep = keras.random.uniform(ops.shape(quantized), seed=self.seeds) >= self.drop
        mixed = ops.where(keep, quantized, unquantized)
        return self.linear(mixed, self.kernel()) - self.linear(mixed, self.float_kernel)


class _NoRetracingNotice(logging.Filter):
    """Each layer's rounding model is new, with its own shapes; TensorFlow counts their
    first traces as retracing one function and warns after five."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def fit_rounding(trainer: keras.Model, inputs, targets: np.ndarray, iterations: int,
                 batch_size: int, learning_rate: float) -> None:
    """Train a rounding model for at least `iterations` steps, one epoch per call (a
    quarter less time on ResNet-8 than a call per step)."""
    steps = max(1, -(-len(targets) // batch_size))
    # PyTorch's trainer runs one step per call and refuses more
    per_call = 1 if keras.backend.backend() == "torch" else steps
    trainer.compile(keras.optimizers.Adam(learning_rate), loss="mse", steps_per_execution=per_call)
    notice = _NoRetracingNotice()
    logging.getLogger("tensorflow").addFilter(notice)
    try:
        trainer.fit(inputs, targets, batch_size=batch_size,
                    epochs=max(1, -(-iterations // steps)), verbose=0)
    finally:
        logging.getLogger("tensorflow").removeFilter(notice)


def reconstruction_loss(layer, inputs: np.ndarray, kernel, reference: np.ndarray) -> float:
    """Mean squared difference of the layer's linear output with `kernel` from
    `reference` (its output with the float kernel), on `inputs`."""
    return float(np.mean((numpy_of(layer.linear(inputs, kernel)) - reference) ** 2))


def set_folded_kernel(layer, folded: np.ndarray) -> None:
    """Set the layer's kernel so that, BatchNorm folded in, it equals `folded`."""
    factor = numpy_of(layer.scale_kernel(ops.ones(folded.shape), layer.batch_norm_scale()))
    layer.kernel.assign(np.divide(folded, factor, out=np.zeros_like(folded), where=factor != 0))


def adaround_layer(layer, inputs: np.ndarray, iterations: int = ITERATIONS,
                   batch_size: int = 32, regularization: float = REGULARIZATION,
                   learning_rate: float = 1e-2, seed: int = 0,
                   unquantized_inputs: Optional[np.ndarray] = None,
                   drop: float = 0.5) -> Tuple[float, float]:
    """Round `layer`'s kernel adaptively on `inputs` (what the layer sees), in place;
    returns the reconstruction loss on `inputs` with nearest rounding and with the kept
    rounding (AdaRound's, unless nearest was better: then the kernel is set to nearest's).

    With `unquantized_inputs` (the same inputs before activation quantization), each
    input element is the unquantized one with probability `drop` while learning: QDrop
    (Wei et al., ICLR 2022), rounding that holds up when the inputs' noise differs."""
    keras.utils.set_random_seed(seed)
    kernel = numpy_of(layer.folded_kernel_and_bias()[0])
    step, levels = rounding_grid(layer)
    reference = numpy_of(layer.linear(inputs, kernel))
    # a tensor: PyTorch's trainable step refuses to divide a numpy array
    nearest_kernel = layer.quantized_kernel(ops.convert_to_tensor(kernel))[0]
    nearest = reconstruction_loss(layer, inputs, nearest_kernel, reference)
    mixing = unquantized_inputs is not None and drop > 0.0
    soft = _SoftRounding(layer, kernel, step, levels, drop if mixing else 0.0, seed,
                         iterations, regularization)
    x = keras.Input(inputs.shape[1:])
    if mixing:
        x_float = keras.Input(inputs.shape[1:])
        trainer = keras.Model([x, x_float], soft([x, x_float]))
        fit_rounding(trainer, [inputs, unquantized_inputs], np.zeros_like(reference),
                     iterations, batch_size, learning_rate)
    else:  # the float kernel's output is the same every step: computed once
        fit_rounding(keras.Model(x, soft(x)), inputs, reference, iterations, batch_size,
                     learning_rate)
    up = (numpy_of(soft.v) >= 0.0).astype(np.float32)
    rounded = step * np.clip(np.floor(kernel / step) + up, -levels, levels)
    set_folded_kernel(layer, rounded)
    folded = layer.folded_kernel_and_bias()[0]
    learned = reconstruction_loss(layer, inputs, layer.quantized_kernel(folded)[0], reference)
    if learned > nearest:  # the kernel rounded to nearest: on its grid either way
        set_folded_kernel(layer, step * np.clip(np.round(kernel / step), -levels, levels))
        return nearest, nearest
    return nearest, learned
