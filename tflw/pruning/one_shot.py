"""`prune_channels`: remove a chosen fraction of each channel group's filters at once.

The channels go by the same scores `UpdatePruningStep` uses (filter L2 norm times the
BatchNorm scale, summed over a group's blocks), and come out physically, as
`strip_pruning` cuts them; fine-tune afterwards.

```python
small = prune_channels(model, {"conv2d": 0.5, "conv2d_2": 0.75})   # group name -> keep
```
"""

from typing import Mapping

import keras

from tflw.pruning.callbacks import channel_group_mask, channel_groups_of, layers_by_name
from tflw.pruning.prune_model import prune_model
from tflw.pruning.schedules import ConstantSparsity
from tflw.pruning.strip import strip_pruning


def masked_model(model: keras.Model) -> keras.Model:
    """A copy of `model` with a channel mask (all ones) on every group that can be pruned."""
    return prune_model(model, ConstantSparsity(0.0), structure="channels", skip=[])


def set_keep(pruned: keras.Model, keep: Mapping[str, float]) -> None:
    """Set the masks of `pruned` (from `masked_model`) so that group g keeps `keep[g]` of
    its channels; groups not named keep all of them."""
    groups = channel_groups_of(pruned)
    unknown = sorted(set(keep) - set(groups))
    if unknown:
        raise ValueError(
            f"no prunable channel group named {unknown}: the groups are {sorted(groups)} "
            "(a group is named after its first Conv2D/Dense).")
    layers = layers_by_name(pruned)
    for name, members in groups.items():
        for member in members:
            member.mask.assign(keras.ops.ones_like(member.mask))
        mask = channel_group_mask(members, layers, 1.0 - keep.get(name, 1.0))
        for member in members:
            member.mask.assign(mask)


def prune_channels(model: keras.Model, keep: Mapping[str, float]) -> keras.Model:
    """A plain Keras model with each named channel group cut to `keep[group]` of its channels.

    Args:
        model: a float Functional or Sequential Keras 3 model.
        keep: group name (its first Conv2D/Dense) -> fraction of channels kept, in (0, 1].

    Returns:
        The smaller model; it computes what `model` computes with those channels at zero.
    """
    pruned = masked_model(model)
    set_keep(pruned, keep)
    return strip_pruning(pruned)
