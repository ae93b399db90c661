"""Read a Sequential/Functional Keras 3 model as a flat list of layer calls.

Nested models are inlined, so the rest of tflw sees one graph of plain layers.

```python
graph = read_graph(model)
for step in graph.steps:
    print(step.layer.name, step.inputs, step.outputs)
```
"""

from dataclasses import dataclass, field
from typing import Optional

import keras
from keras.src.models.functional import Functional

from tflw.errors import UnsupportedModelError


@dataclass
class Step:
    """One layer call: the node it came from and the tensor keys it reads and writes."""

    layer: keras.layers.Layer
    node: object
    inputs: list
    outputs: list


@dataclass
class Graph:
    """A model as layer calls in topological order; tensors are named by integer keys."""

    inputs: list
    outputs: list
    input_tensors: list
    steps: list = field(default_factory=list)

    def consumers(self, key: int) -> list:
        """Indexes of the steps that read tensor `key`."""
        return [i for i, step in enumerate(self.steps) if key in step.inputs]

    def is_output(self, key: int) -> bool:
        return key in self.outputs


def _functional(model: keras.Model) -> Functional:
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise UnsupportedModelError(
                f"Sequential model '{model.name}' has no known input shape: start it with "
                "keras.Input(shape=...) or call model.build(input_shape) first."
            )
        return functional
    if isinstance(model, Functional):
        return model
    raise UnsupportedModelError(
        f"model '{model.name}' ({type(model).__name__}) is a subclassed keras.Model, whose "
        "graph cannot be read. Rewrite it with the Functional API "
        "(x = keras.Input(...); y = layer(x); ...; keras.Model(x, y)) or as a "
        "keras.Sequential, then call tflw again."
    )


def read_graph(model: keras.Model) -> Graph:
    """Flatten `model` into a `Graph` of its leaf layers."""
    functional = _functional(model)
    alias: dict = {}
    steps: list = []
    _inline(functional, alias, steps, seen=set())
    return Graph(
        inputs=[id(t) for t in functional.inputs],
        outputs=[alias.get(id(t), id(t)) for t in functional.outputs],
        input_tensors=list(functional.inputs),
        steps=steps,
    )


def _inline(functional: Functional, alias: dict, steps: list, seen: set) -> None:
    for depth in sorted(functional._nodes_by_depth, reverse=True):
        for node in functional._nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            inputs = [alias.get(id(t), id(t)) for t in node.input_tensors]
            layer = node.operation
            if isinstance(layer, keras.Model):
                inner = _functional(layer)
                if id(inner) in seen:
                    raise UnsupportedModelError(
                        f"sub-model '{layer.name}' is called more than once; tflw inlines "
                        "sub-models, so build each call from its own layers."
                    )
                seen.add(id(inner))
                for inner_input, key in zip(inner.inputs, inputs):
                    alias[id(inner_input)] = key
                _inline(inner, alias, steps, seen)
                for outer, inner_output in zip(node.outputs, inner.outputs):
                    alias[id(outer)] = alias.get(id(inner_output), id(inner_output))
                continue
            steps.append(Step(layer, node, inputs, [id(t) for t in node.outputs]))


def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer with the same config and weights."""
    clone = type(layer).from_config(layer.get_config())
    if layer.weights:
        clone.build_from_config(layer.get_build_config())
        clone.set_weights(layer.get_weights())
    return clone


def call_like(step: Step, layer: keras.layers.Layer, tensors: list,
              training: Optional[bool] = None):
    """Call `layer` with the arguments of the original call in `step`, with its input
    tensors replaced by `tensors` (same order as `step.inputs`); `training` as given (the
    original call's is dropped)."""
    mapping = {id(t): new for t, new in zip(step.node.input_tensors, tensors)}
    args, kwargs = step.node.arguments.fill_in(mapping)
    kwargs.pop("training", None)
    if training is not None:
        kwargs["training"] = training
    return layer(*args, **kwargs)


def input_like(tensor) -> keras.KerasTensor:
    """A fresh `keras.Input` with the shape, dtype and name of a model input."""
    return keras.Input(
        shape=tensor.shape[1:], batch_size=tensor.shape[0], dtype=tensor.dtype,
        name=tensor._keras_history[0].name,
    )


def replay(model: keras.Model, replace) -> keras.Model:
    """A new model with the graph of `model`, each layer call made by `replace(step, tensors)`
    (which returns the output tensor(s) of that call, built from new layers)."""
    graph = read_graph(model)
    inputs = [input_like(t) for t in graph.input_tensors]
    tensors = dict(zip(graph.inputs, inputs))
    for step in graph.steps:
        outputs = replace(step, [tensors[key] for key in step.inputs])
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        tensors.update(zip(step.outputs, outputs))
    outputs = [tensors[key] for key in graph.outputs]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0],
                       outputs if len(outputs) > 1 else outputs[0], name=model.name)
