"""The two layers a pruned model is made of.

`PruneLowMagnitude` wraps a Conv2D, DepthwiseConv2D or Dense and multiplies its kernel
by a 0/1 mask of the same shape (unstructured or N:M). `ChannelMasked` wraps the last
per-channel layer of a block (a BatchNormalization, or the conv itself) and multiplies
its output channels by a 0/1 mask, so a pruned channel is exactly zero downstream and can
be cut out by `strip_pruning`. Masks are set by `UpdatePruningStep`; both layers only
multiply by them, so they train on every Keras backend and save as `.keras`.

```python
pruned = PruneLowMagnitude(keras.layers.Dense(64), ConstantSparsity(0.8))
```
"""

from typing import Optional

import keras

from tflw.pruning.schedules import PruningSchedule


def kernel_variable(layer: keras.layers.Layer):
    """The layer's weight tensor that pruning masks (named 'kernel' in Keras 3)."""
    for variable in layer.trainable_weights:
        if variable.name == "kernel":
            return variable
    raise ValueError(f"layer '{layer.name}' has no kernel to prune")


class _Masked(keras.layers.Wrapper):
    """A wrapper with a schedule and a non-trainable 0/1 mask."""

    def __init__(self, layer, schedule: PruningSchedule, **kwargs):
        super().__init__(layer, **kwargs)
        self.schedule = schedule

    def mask_shape(self, input_shape) -> tuple:
        raise NotImplementedError

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.mask = self.add_weight(
            name="mask", shape=self.mask_shape(input_shape), initializer="ones", trainable=False
        )
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config["schedule"] = keras.saving.serialize_keras_object(self.schedule)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = keras.layers.deserialize(config["layer"], custom_objects=custom_objects)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tflw")
class PruneLowMagnitude(_Masked):
    """Multiplies the wrapped layer's kernel by a mask of the same shape.

    The masked kernel is what the layer computes with, so a pruned weight gets no gradient
    and stays exactly zero in the exported model.

    Args:
        layer: a Conv2D, DepthwiseConv2D or Dense.
        schedule: when and how much to prune.
        structure: "unstructured", or "N:M" such as "2:4" (N kept in every M input weights).
        scope: "layer" (each layer reaches the sparsity) or "global" (one magnitude
            threshold over every layer with global scope).
    """

    def __init__(self, layer, schedule: PruningSchedule, structure: str = "unstructured",
                 scope: str = "layer", **kwargs):
        super().__init__(layer, schedule, **kwargs)
        self.structure = structure
        self.scope = scope

    @property
    def n_m(self) -> Optional[tuple]:
        """(N, M) for N:M pruning, else None."""
        if self.structure == "unstructured":
            return None
        n, m = self.structure.split(":")
        return int(n), int(m)

    def mask_shape(self, input_shape) -> tuple:
        return tuple(kernel_variable(self.layer).shape)

    def call(self, inputs, **kwargs):
        kernel = kernel_variable(self.layer)
        # Inside this scope the inner layer reads kernel * mask in place of its kernel.
        state = [(v, v.value) for v in self.layer.variables if v is not kernel]
        state.append((kernel, kernel.value * self.mask))
        with keras.StatelessScope(state_mapping=state):
            return self.layer(inputs, **kwargs)

    def get_config(self):
        return {**super().get_config(), "structure": self.structure, "scope": self.scope}


@keras.saving.register_keras_serializable(package="tflw")
class ChannelMasked(_Masked):
    """Multiplies the wrapped layer's output channels (last axis) by a 0/1 mask.

    Args:
        layer: the last per-channel layer of a block (BatchNormalization, Conv2D, Dense,
            DepthwiseConv2D).
        schedule: when and which fraction of channels to prune.
        group: blocks whose outputs meet in an Add share one group, hence one mask.
        scored_by: name of the Conv2D/Dense whose filters score the channels (with this
            layer's BatchNorm scale), or None for a block that only follows the group.
    """

    def __init__(self, layer, schedule: PruningSchedule, group: str = "",
                 scored_by: Optional[str] = None, **kwargs):
        super().__init__(layer, schedule, **kwargs)
        self.group = group
        self.scored_by = scored_by

    def mask_shape(self, input_shape) -> tuple:
        return (self.layer.compute_output_shape(input_shape)[-1],)

    def call(self, inputs, **kwargs):
        return self.layer(inputs, **kwargs) * self.mask

    def get_config(self):
        return {**super().get_config(), "group": self.group, "scored_by": self.scored_by}
