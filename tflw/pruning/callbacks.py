"""`UpdatePruningStep`: the callback that recomputes pruning masks as the schedule says.

```python
pruned.fit(x, y, epochs=4, callbacks=[tflw.UpdatePruningStep()])
history.history["sparsity/conv2d_1"]   # per-layer sparsity after each epoch
```
"""

import keras
import numpy as np

from tflw.pruning.masks import channel_scores, global_masks, magnitude_mask, n_m_mask, sparsity_of
from tflw.pruning.wrappers import ChannelMasked, PruneLowMagnitude, kernel_variable


def pruned_layers(model: keras.Model) -> list:
    """Every `PruneLowMagnitude` and `ChannelMasked` layer in `model` (nested included)."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, (PruneLowMagnitude, ChannelMasked))]


def layer_sparsity(layer) -> float:
    """Fraction of zero weights a pruned layer computes with (of channels, for a ChannelMasked)."""
    mask = keras.ops.convert_to_numpy(layer.mask)
    if isinstance(layer, ChannelMasked):
        return sparsity_of(mask)
    return sparsity_of(keras.ops.convert_to_numpy(kernel_variable(layer.layer)) * mask)


def _numpy(variable) -> np.ndarray:
    return keras.ops.convert_to_numpy(variable)


def _update_kernel_masks(layers: list, step: int) -> None:
    global_scope = [w for w in layers if w.scope == "global" and w.n_m is None]
    for wrapper in layers:
        if wrapper in global_scope:
            continue
        kernel = _numpy(kernel_variable(wrapper.layer))
        if wrapper.n_m is not None:
            n, m = wrapper.n_m
            wrapper.mask.assign(n_m_mask(kernel, n, m, axis=-2))
        else:
            # Scores keep pruned weights at zero, so sparsity only grows.
            scores = np.abs(kernel) * _numpy(wrapper.mask)
            wrapper.mask.assign(magnitude_mask(scores, wrapper.schedule.sparsity(step)))
    if global_scope:
        scores = [np.abs(_numpy(kernel_variable(w.layer))) * _numpy(w.mask) for w in global_scope]
        sparsity = global_scope[0].schedule.sparsity(step)
        for wrapper, mask in zip(global_scope, global_masks(scores, sparsity)):
            wrapper.mask.assign(mask)


def _bn_scale(layer) -> np.ndarray:
    scale = 1.0 / np.sqrt(_numpy(layer.moving_variance) + layer.epsilon)
    return scale * _numpy(layer.gamma) if layer.scale else scale


def channel_group_mask(members: list, all_layers: dict, sparsity: float) -> np.ndarray:
    """The mask of one channel group at `sparsity`: its channels scored by the summed filter
    norms of its scoring blocks (times their BatchNorm scale), already pruned ones at 0."""
    scores = 0.0
    for member in members:
        if member.scored_by is None:
            continue
        scorer = all_layers[member.scored_by]
        scale = _bn_scale(member.layer) if isinstance(member.layer, keras.layers.BatchNormalization) else None
        scores = scores + channel_scores(_numpy(kernel_variable(scorer)), scale)
    scores = scores * _numpy(members[0].mask)
    channels = scores.size
    pruned = int(round(sparsity * channels, 9))  # whole channels, rounded down
    return magnitude_mask(scores, pruned / channels)


def channel_groups_of(model: keras.Model) -> dict:
    """{group name: its `ChannelMasked` layers} of a model from `prune_model(structure="channels")`."""
    groups: dict = {}
    for layer in pruned_layers(model):
        if isinstance(layer, ChannelMasked):
            groups.setdefault(layer.group, []).append(layer)
    return groups


def layers_by_name(model: keras.Model) -> dict:
    """Every layer of `model` by name, the layers inside pruning wrappers included."""
    found = {layer.name: layer for layer in model._flatten_layers(recursive=True)}
    for layer in pruned_layers(model):
        found.setdefault(layer.layer.name, layer.layer)
    return found


class UpdatePruningStep(keras.callbacks.Callback):
    """Advances the pruning step each batch and recomputes masks when the schedule says so.

    The step starts at the optimizer's iteration count, so resuming training continues the
    schedule. After each epoch, `logs["sparsity/<layer>"]` holds each pruned layer's
    sparsity (History and TensorBoard record it).
    """

    def on_train_begin(self, logs=None):
        model = self.model
        self.layers = pruned_layers(model)
        if not self.layers:
            raise ValueError("the model has no pruned layers: build it with tflw.prune_model")
        self.all_layers = layers_by_name(model)
        self.step = int(_numpy(model.optimizer.iterations)) if model.optimizer else 0

    def on_train_batch_begin(self, batch, logs=None):
        due = [layer for layer in self.layers if layer.schedule.should_prune(self.step)]
        if due:
            self.model  # noqa: B018  (on JAX this syncs the weights the masks are read from)
            _update_kernel_masks([w for w in due if isinstance(w, PruneLowMagnitude)], self.step)
            groups: dict = {}
            for layer in due:
                if isinstance(layer, ChannelMasked):
                    groups.setdefault(layer.group, []).append(layer)
            for members in groups.values():
                mask = channel_group_mask(members, self.all_layers,
                                          members[0].schedule.sparsity(self.step))
                for member in members:
                    member.mask.assign(mask)
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({f"sparsity/{layer.name}": layer_sparsity(layer) for layer in self.layers})
