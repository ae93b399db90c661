"""Read a Sequential/Functional Keras 3 model as a flat list of layer calls.

Nested models are inlined, so the rest of tflw sees one graph of plain layers.

```python
graph = read_graph(model)
for step in graph.steps:
    print(step.layer.name, step.inputs, step.outputs)
```
"""

from dataclasses import dataclass, field

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
