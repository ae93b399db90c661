"""BRECQ: adaptive rounding learned per block, reconstructing a block's output (a residual
block whole, a depthwise layer with the layer after it) instead of each layer's (Li et
al., "BRECQ: Pushing the Limit of Post-Training Quantization by Block Reconstruction",
ICLR 2021).

A layer's rounding errors that the next layer of its block cancels cost nothing; layer
by layer, AdaRound cannot see that. Here every kernel of a block rounds by its own h(V)
(`tflw.ptq.adaround`), the block runs through the model's own layers with those soft
kernels and its activations fake-quantized on their calibrated ranges, and the loss is
the distance of its output from the float model's block output on float inputs.

```python
for block, inputs, target in walk_blocks(qat, data, blocks(qat), float_kernels):
    brecq_block(block, inputs, target)    # rounds the block before the walk runs it
```
"""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Tuple

import keras
import numpy as np
from keras import ops

from tflw.conversion_trace import float_rounding
from tflw.ptq.adaround import (ITERATIONS, REGULARIZATION, AnnealedRounding, fit_rounding,
                               numpy_of, rectified_sigmoid, rounding_grid, set_folded_kernel,
                               soft_start)
from tflw.ptq.layer_inputs import LINEAR, run_float_rounded, walk
from tflw.ptq.ranges import unquantized_activations
from tflw.quantization.fake_quant import frozen_ranges
from tflw.quantization.folded import kernel_overrides


@dataclass
class Block:
    """A stretch of the model between two tensors every path passes through."""

    inputs: keras.KerasTensor
    outputs: keras.KerasTensor
    layers: List[keras.layers.Layer]  # its conv, depthwise and dense layers

    def model(self) -> keras.Model:
        return keras.Model(self.inputs, self.outputs)


def blocks(model: keras.Model) -> List[Block]:
    """The model cut at every tensor all paths pass through (after a residual add, between
    two layers of a chain); a stretch of depthwise layers only is joined to the next."""
    first = model.inputs[0]
    live = {id(first): len(model.layers[0]._outbound_nodes)}
    found, start, inside = [], first, []
    for layer in model.layers[1:]:
        for tensor in (layer.input if isinstance(layer.input, list) else [layer.input]):
            live[id(tensor)] -= 1
            if not live[id(tensor)]:
                del live[id(tensor)]
        consumers = len(layer._outbound_nodes)
        if consumers:
            live[id(layer.output)] = consumers
        inside.append(layer)
        if (not consumers or list(live) == [id(layer.output)]):
            linear = [l for l in inside if isinstance(l, LINEAR)]
            if linear and not all(type(l).__name__ == "QuantDepthwiseConv2D" for l in linear):
                found.append(Block(start, layer.output, linear))
                start, inside = layer.output, []
            elif not linear:
                start, inside = layer.output, []
    return found


class _BlockRounding(AnnealedRounding):
    """The block with each kernel soft-rounded, activations quantized on frozen ranges."""

    def __init__(self, block: keras.Model, layers: list, iterations: int,
                 regularization: float, **kwargs):
        super().__init__(iterations, regularization, **kwargs)
        self.block, self.grids, self.vs = block, {}, {}
        for layer in layers:
            kernel = numpy_of(layer.folded_kernel_and_bias()[0])
            step, levels = rounding_grid(layer)
            self.grids[layer.name] = (ops.convert_to_tensor(np.floor(kernel / step)),
                                      ops.convert_to_tensor(step), levels)
            self.vs[layer.name] = self.add_weight(
                name=f"v_{layer.name}", shape=kernel.shape,
                initializer=keras.initializers.Constant(soft_start(kernel, step)))

    def soft_kernel(self, name: str):
        floor, step, levels = self.grids[name]
        return step * ops.clip(floor + rectified_sigmoid(self.vs[name]), -levels, levels)

    def call(self, inputs, training=None):
        self.add_regularizer(list(self.vs.values()), training)
        kernels = {name: (lambda name=name: self.soft_kernel(name)) for name in self.vs}
        with kernel_overrides(kernels), frozen_ranges():
            return self.block(inputs, training=True)


def walk_blocks(model: keras.Model, data: np.ndarray, found: List[Block],
                float_kernels: dict) -> Iterator[Tuple[Block, np.ndarray, np.ndarray]]:
    """Each block with its inputs over `data` in the quantized model, the blocks before it
    as the caller has rounded them, and its output in the float model (float kernels, no
    activation quantization): two walks over the graph, one op at a time."""
    kernels = {name: (lambda kernel=kernel: ops.convert_to_tensor(kernel))
               for name, kernel in float_kernels.items()}

    @contextmanager
    def float_model() -> Iterator[None]:
        with kernel_overrides(kernels), unquantized_activations(model):
            yield

    inputs = walk(model, data, [(id(block.inputs), block) for block in found], float_rounding,
                  training=False)
    targets = walk(model, data, [(id(block.outputs), block) for block in found], float_model,
                   training=True)
    for (block, x), (_, target) in zip(inputs, targets):
        yield block, x, target


def brecq_block(block: Block, inputs: np.ndarray, target: np.ndarray,
                iterations: int = ITERATIONS, batch_size: int = 32,
                regularization: float = REGULARIZATION, learning_rate: float = 1e-3,
                seed: int = 0) -> Tuple[float, float]:
    """Round `block`'s kernels so that its output on `inputs` reconstructs `target` (the
    float model's), in place; returns the block's output error (mean squared, rounded in
    float) with nearest rounding and with the kept rounding (BRECQ's, unless nearest was
    better)."""
    keras.utils.set_random_seed(seed)
    sub = block.model()

    def error() -> float:
        return float(np.mean((run_float_rounded(sub, inputs) - target) ** 2))

    nearest = error()
    originals = {layer.name: numpy_of(layer.folded_kernel_and_bias()[0]) for layer in block.layers}
    trainable = [layer.trainable for layer in sub.layers]
    for layer in sub.layers:
        layer.trainable = False
    try:
        rounding = _BlockRounding(sub, block.layers, iterations, regularization)
        x = keras.Input(inputs.shape[1:])
        fit_rounding(keras.Model(x, rounding(x)), inputs, target, iterations, batch_size,
                     learning_rate)
    finally:
        for layer, flag in zip(sub.layers, trainable):
            layer.trainable = flag
    for layer in block.layers:
        floor, step, levels = rounding.grids[layer.name]
        up = (numpy_of(rounding.vs[layer.name]) >= 0.0).astype(np.float32)
        set_folded_kernel(layer, numpy_of(step) * np.clip(numpy_of(floor) + up, -levels, levels))
    learned = error()
    if learned > nearest:
        for layer in block.layers:
            _, step, levels = rounding.grids[layer.name]
            set_folded_kernel(layer, numpy_of(step) * np.clip(
                np.round(originals[layer.name] / numpy_of(step)), -levels, levels))
        return nearest, nearest
    return nearest, learned
