"""How much each single change costs the float model: the solver's loss tables.

For every weighted layer and bit width below 8, the loss increase on held-out data when
that layer alone has its kernel rounded to 2^k levels per output channel; for every
channel group and keep ratio below 1, the increase when that group alone loses its
weakest channels (as `prune_channels` would cut them), measured after re-estimating every
BatchNorm's statistics on training samples: without that, the loss of a pruned network
says little about the accuracy it reaches once fine-tuned (EagleEye's adaptive BN).
Changes are assumed to add up, as in HAQ/HAWQ and Sony MCT's mixed precision.

```python
bits_loss, keep_loss = measure_sensitivity(model, space, x_val, y_val, loss, x_train[:512])
bits_loss["conv2d"]      # [0.0, 0.004, 0.09] for bits (8, 4, 2)
```

References:
    Li et al., "EagleEye: Fast Sub-net Evaluation for Efficient Neural Network Pruning",
    ECCV 2020 (adaptive batch normalization before evaluating a pruned candidate).
"""

from typing import Callable, Dict, Tuple

import keras
import numpy as np

from tflw.pruning.callbacks import layers_by_name
from tflw.pruning.one_shot import masked_model, set_keep
from tflw.pruning.wrappers import kernel_variable
from tflw.search.space import SearchSpace

CLIP_RATIOS = np.linspace(0.5, 1.0, 11)


def round_to_bits(kernel: np.ndarray, bits: int, channels: int) -> np.ndarray:
    """`kernel` on 2^bits uniform signed levels per output channel (the last `channels`
    entries of its flattened shape), the clipping level chosen per channel for the least
    squared error."""
    flat = kernel.reshape(-1, channels)
    top = 2 ** (bits - 1) - 1
    peak = np.maximum(np.abs(flat).max(axis=0), 1e-12)
    best, best_error = flat, np.full(channels, np.inf)
    for ratio in CLIP_RATIOS:
        step = ratio * peak / max(top, 1)
        rounded = np.clip(np.round(flat / step), -top - 1, top) * step
        error = ((rounded - flat) ** 2).sum(axis=0)
        better = error < best_error
        best = np.where(better, rounded, best)
        best_error = np.minimum(error, best_error)
    return best.reshape(kernel.shape)


def _batch_norms(model: keras.Model) -> list:
    return [layer for layer in model._flatten_layers(recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(model: keras.Model, x: np.ndarray) -> None:
    """Set every BatchNorm's moving mean and variance to their values over `x` (one batch)."""
    layers = _batch_norms(model)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        model(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def measure_sensitivity(model: keras.Model, space: SearchSpace, x: np.ndarray, y: np.ndarray,
                        loss: Callable, recalibration: np.ndarray, batch_size: int = 256,
                        progress: bool = False) -> Tuple[Dict[str, list], Dict[str, list]]:
    """Loss increase per (layer, bits) and per (group, keep) on (`x`, `y`); channel
    changes measured with BatchNorm statistics re-estimated on `recalibration` (inputs).

    Returns:
        ({layer: [increase at each of space.bits]}, {group: [increase at each of space.keeps]}).
    """
    probe = masked_model(model)
    layers = layers_by_name(probe)

    def loss_now() -> float:
        predictions = probe.predict(x, batch_size=batch_size, verbose=0)
        return float(np.mean(keras.ops.convert_to_numpy(loss(y, predictions))))

    count = len(space.layers) * (len(space.bits) - 1) + len(space.groups) * (len(space.keeps) - 1)
    bar = keras.utils.Progbar(count, unit_name="change") if progress and count else None
    base = loss_now()
    bits_loss: Dict[str, list] = {}
    for layer in space.layers:
        found = layers[layer.name]
        kernel_var = kernel_variable(getattr(found, "layer", found))  # inside a mask wrapper
        original = keras.ops.convert_to_numpy(kernel_var)
        bits_loss[layer.name] = []
        for bits in space.bits:
            if bits >= 8:
                bits_loss[layer.name].append(0.0)
                continue
            kernel_var.assign(round_to_bits(original, bits, layer.out_channels))
            bits_loss[layer.name].append(loss_now() - base)
            if bar:
                bar.add(1)
        kernel_var.assign(original)
    statistics = [(v, keras.ops.convert_to_numpy(v)) for layer in _batch_norms(probe)
                  for v in (layer.moving_mean, layer.moving_variance)]

    def recalibrated_loss(keep: dict) -> float:
        set_keep(probe, keep)
        recalibrate_batch_norm(probe, recalibration)
        value = loss_now()
        for variable, original in statistics:
            variable.assign(original)
        return value

    recalibrated_base = recalibrated_loss({})
    keep_loss: Dict[str, list] = {}
    for group in space.groups:
        keep_loss[group] = []
        for keep in space.keeps:
            if keep >= 1.0:
                keep_loss[group].append(0.0)
                continue
            keep_loss[group].append(recalibrated_loss({group: keep}) - recalibrated_base)
            if bar:
                bar.add(1)
    set_keep(probe, {})
    return bits_loss, keep_loss
