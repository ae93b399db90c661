"""What each conv, depthwise and dense layer of a quantized model receives over the
calibration data, for the steps that change layers one after another (AdaRound, bias
correction).

One walk over the graph runs each op once over the data: it hands over a layer's inputs
and runs the layer itself only when the caller asks for the next one, after changing it.
So each layer sees every layer before it as changed, as it will run on the device, for the
cost of one forward pass instead of one per layer. The device's rare one-LSB differences
do not move these statistics: the walk rounds in float (emulating them costs ten times the
layers' own arithmetic).

```python
for layer, inputs in walk_layer_inputs(qat, x_calibration):
    adaround_layer(layer, inputs)      # changes the layer before the walk runs it
```
"""

from collections import Counter, deque
from typing import Any, Callable, ContextManager, Iterator, List, Sequence, Tuple

import keras
import numpy as np

from tflw.conversion_trace import float_rounding
from tflw.model_graph import Step, call_like, read_graph
from tflw.ptq.ranges import unquantized_activations
from tflw.quantization.folded import QuantConv2D, QuantDepthwiseConv2D, QuantDense

LINEAR = (QuantConv2D, QuantDepthwiseConv2D, QuantDense)


def linear_layers(model: keras.Model) -> List[keras.layers.Layer]:
    """The model's conv, depthwise and dense layers."""
    return [layer for layer in model.layers if isinstance(layer, LINEAR)]


def walk_layer_inputs(model: keras.Model, data: np.ndarray, quantized: bool = True,
                      batch_size: int = 256) -> Iterator[Tuple[keras.layers.Layer, np.ndarray]]:
    """Each conv, depthwise and dense layer of `model` (a single-input tflw quantized
    model) in the order it runs, with what it receives over `data`: as on the device, or
    (`quantized` False) with every activation before its quantization."""
    steps = [step for step in read_graph(model).steps if isinstance(step.layer, LINEAR)]
    context = float_rounding if quantized else lambda: unquantized_activations(model)
    return walk(model, data, [(step.inputs[0], step.layer) for step in steps], context,
                training=not quantized, batch_size=batch_size)


def walk(model: keras.Model, data: np.ndarray, wanted: Sequence[Tuple[int, Any]],
         context: Callable[[], ContextManager], training: bool,
         batch_size: int = 256) -> Iterator[Tuple[Any, np.ndarray]]:
    """Runs `model`'s ops over `data` in order, each within `context()` (entered per op,
    never across a yield: the caller's own work runs outside it); for each (tensor key,
    tag) of `wanted`, in that order, yields (tag, the tensor's values) as soon as the
    tensor exists, before any further op runs. A tensor is dropped once the ops that read
    it have run."""
    graph = read_graph(model)
    values = {graph.inputs[0]: data}
    reads = Counter(key for step in graph.steps for key in step.inputs)
    pending = deque(wanted)
    for step in [*graph.steps, None]:
        while pending and pending[0][0] in values:
            key, tag = pending.popleft()
            yield tag, values[key]
        if step is None:
            return
        with context():
            outputs = _run(step, [values[k] for k in step.inputs], training, batch_size)
        values.update(zip(step.outputs, outputs))
        for key in step.inputs:
            reads[key] -= 1
            if not reads[key] and not graph.is_output(key):
                del values[key]


def layer_inputs(model: keras.Model, layer: keras.layers.Layer, data: np.ndarray,
                 quantized: bool = True) -> np.ndarray:
    """What `layer` receives in `model` over `data` (`walk_layer_inputs`)."""
    return next(x for found, x in walk_layer_inputs(model, data, quantized) if found is layer)


def run_batched(function, data: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """`function` over `data` in batches, as one array."""
    return np.concatenate([keras.ops.convert_to_numpy(function(data[i:i + batch_size]))
                           for i in range(0, len(data), batch_size)])


def run_float_rounded(model: keras.Model, data: np.ndarray) -> np.ndarray:
    """The quantized model's outputs on `data` with float rounding (the device's rare
    one-LSB differences do not move a comparison; emulating them costs ten times the
    layers' arithmetic), called directly: a `predict` traced here would keep float
    rounding."""
    with float_rounding():
        return run_batched(model, data)


def _run(step: Step, inputs: List[np.ndarray], training: bool,
         batch_size: int) -> List[np.ndarray]:
    batches = []
    for start in range(0, len(inputs[0]), batch_size):
        out = call_like(step, step.layer, [x[start:start + batch_size] for x in inputs],
                        training=training)
        batches.append(out if isinstance(out, (list, tuple)) else [out])
    return [np.concatenate([keras.ops.convert_to_numpy(batch[i]) for batch in batches])
            for i in range(len(batches[0]))]
