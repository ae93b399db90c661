"""Activation ranges after training: every learned-range quantizer's float input recorded
over calibration data, then a range per tensor by min/max, a percentile, or least
quantization error (MSE).

```python
samples = record_activations(qat, x_calibration)        # {quantizer: TensorSample}
for quantizer, sample in samples.items():
    set_range(quantizer, sample.range("mse"))
```

The converter's post-training quantization uses min/max of the representative data; a
few outliers then stretch the range and coarsen every other value. Clipping them (the
99.99th percentile, or the range of least mean squared error on 256 levels, searched as
in Banner et al., "Post-training 4-bit quantization", NeurIPS 2019) is what
post-training methods start from.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Tuple

import keras
import numpy as np

from tflw.quantization.fake_quant import MIN_RANGE, FakeQuant, recording_inputs

RANGE_METHODS = ("minmax", "percentile", "mse")
# Values kept per tensor for the percentile and MSE estimates (all of min and max are kept).
SAMPLE_SIZE = 1 << 16
PERCENTILE = 99.99
# Clipping levels tried by the MSE search, as fractions of the min/max range.
MSE_GRID = np.linspace(0.2, 1.0, 81)


@dataclass
class TensorSample:
    """Exact min and max of one tensor over the calibration data, and a uniform sample of
    its values (reservoir-free: an equal share of each batch)."""

    low: float = np.inf
    high: float = -np.inf
    values: List[np.ndarray] = field(default_factory=list)

    def add(self, tensor: np.ndarray, share: int, rng: np.random.Generator) -> None:
        flat = np.ravel(tensor).astype(np.float32)
        self.low, self.high = min(self.low, float(flat.min())), max(self.high, float(flat.max()))
        self.values.append(flat if flat.size <= share else rng.choice(flat, share, replace=False))

    def range(self, method: str, bits: int = 8) -> Tuple[float, float]:
        """[min, max] by `method`, widened to include 0 (as TFLite's ranges are)."""
        if method not in RANGE_METHODS:
            raise ValueError(f"range method {method!r}: choose one of {', '.join(RANGE_METHODS)}")
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        values = np.concatenate(self.values)
        if method == "percentile":
            low = min(float(np.percentile(values, 100 - PERCENTILE)), 0.0)
            high = max(float(np.percentile(values, PERCENTILE)), 0.0)
        elif method == "mse":
            low, high = min(((low * c, high * c) for c in MSE_GRID),
                            key=lambda r: quantization_mse(values, *r, bits))
        return low, max(high, low + MIN_RANGE)


def quantization_mse(values: np.ndarray, low: float, high: float, bits: int = 8) -> float:
    """Mean squared error of `values` fake-quantized on [low, high] (nudged as TFLite does)."""
    levels = 2 ** bits - 1
    scale = max(high - low, MIN_RANGE) / levels
    zero = np.clip(np.round(-low / scale), 0, levels)
    quantized = (np.clip(np.round(values / scale) + zero, 0, levels) - zero) * scale
    return float(np.mean((quantized - values) ** 2))


@contextmanager
def unquantized_activations(model: keras.Model, record=lambda quantizer, tensor: None
                            ) -> Iterator[None]:
    """Within it, `model(x, training=True)` runs with every learned activation range off
    (each quantizer's input handed to `record` first) and no dropout: the activations of
    the weight-quantized model before activation quantization."""
    with recording_inputs(record), _without_dropout(model):
        yield


@contextmanager
def _without_dropout(model: keras.Model) -> Iterator[None]:
    """Dropout off while the model runs in training mode (how tflw's layers skip their
    integer paths): the recorded activations are the inference ones."""
    layers = [layer for layer in model._flatten_layers(recursive=True)
              if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in layers]
    for layer in layers:
        layer.rate = 0.0
    try:
        yield
    finally:
        for layer, rate in zip(layers, rates):
            layer.rate = rate


def record_activations(qat: keras.Model, data: np.ndarray, batch_size: int = 64,
                       seed: int = 0) -> Dict[FakeQuant, TensorSample]:
    """The float input of every learned-range quantizer of `qat` over `data`, nothing
    quantized on the way (weights are, as they will be on the device)."""
    samples: Dict[FakeQuant, TensorSample] = {}
    rng = np.random.default_rng(seed)
    batches = max(1, -(-len(data) // batch_size))
    share = max(1, SAMPLE_SIZE // batches)

    def record(quantizer: FakeQuant, tensor) -> None:
        samples.setdefault(quantizer, TensorSample()).add(
            keras.ops.convert_to_numpy(tensor), share, rng)

    with unquantized_activations(qat, record):
        for start in range(0, len(data), batch_size):
            qat(data[start:start + batch_size], training=True)
    return samples


def set_range(quantizer: FakeQuant, value_range: Tuple[float, float]) -> None:
    quantizer.range_min.assign(value_range[0])
    quantizer.range_max.assign(value_range[1])
