"""`prune_model`: wrap a Keras 3 model's layers for magnitude pruning during `fit`.

```python
schedule = tflw.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000)
pruned = tflw.prune_model(model, schedule)                       # unstructured
pruned = tflw.prune_model(model, schedule, structure="2:4")      # N:M
pruned = tflw.prune_model(model, schedule, structure="channels") # whole filters
pruned.compile(...); pruned.fit(..., callbacks=[tflw.UpdatePruningStep()])
small = tflw.strip_pruning(pruned)
```

What each kind buys on TFLite-Micro, which runs dense int8 kernels: unstructured and N:M
zeros save neither RAM nor time, only flash after compression (gzip, or LUT in issue 5);
channel pruning removes filters for real, so MACs, flash, arena and latency all shrink.
"""

from typing import Optional

import keras

from tflw.errors import UnsupportedLayerError
from tflw.model_graph import call_like, clone_layer, read_graph, replay
from tflw.pruning.channel_groups import channel_groups
from tflw.pruning.schedules import PruningSchedule
from tflw.pruning.wrappers import ChannelMasked, PruneLowMagnitude

PRUNABLE = ("Conv2D", "DepthwiseConv2D", "Dense")


def default_skipped(model: keras.Model) -> list:
    """The layers left dense by default: the first prunable layer (it has few weights and
    sees raw input) and the last one (the classifier, whose every weight counts)."""
    names = [s.layer.name for s in read_graph(model).steps if type(s.layer).__name__ in PRUNABLE]
    return sorted({names[0], names[-1]}) if names else []


def _structure(structure: str) -> str:
    if structure in ("unstructured", "channels"):
        return structure
    parts = structure.split(":")
    if len(parts) == 2 and all(p.isdigit() for p in parts) and 0 < int(parts[0]) < int(parts[1]):
        return structure
    raise ValueError(
        f"structure must be 'unstructured', 'channels' or 'N:M' with 0 < N < M (e.g. '2:4'), "
        f"got '{structure}'"
    )


def prune_model(
    model: keras.Model,
    schedule: PruningSchedule,
    structure: str = "unstructured",
    scope: str = "layer",
    skip: Optional[list] = None,
) -> keras.Model:
    """A copy of `model` whose prunable layers carry masks that `UpdatePruningStep` sets.

    By default the first prunable layer and the classifier (last prunable layer) stay
    dense (`default_skipped` names them); pass `skip=[...]` to choose, `skip=[]` to prune
    everything. Conv2D, DepthwiseConv2D and Dense are pruned by weight magnitude; with
    `structure="channels"`, Conv2D/Dense filters by their L2 norm times the following
    BatchNorm's scale, with the channels tied by residual Adds pruned together.

    Args:
        model: a built Sequential or Functional Keras 3 model.
        schedule: `ConstantSparsity`, `PolynomialDecay` or `CubicSparsity`.
        structure: "unstructured", "N:M" (e.g. "2:4", along input channels) or "channels".
        scope: "layer" (each layer reaches the sparsity) or "global" (one threshold over
            all pruned layers; unstructured only).
        skip: names of layers to leave dense.

    Returns:
        The model to compile and train with `UpdatePruningStep`.

    Raises:
        UnsupportedLayerError: an N:M layer whose input channels are not a multiple of M.
    """
    structure = _structure(structure)
    if scope not in ("layer", "global") or (scope == "global" and structure != "unstructured"):
        raise ValueError("scope must be 'layer', or 'global' with structure='unstructured'")
    skipped = set(default_skipped(model) if skip is None else skip)
    graph = read_graph(model)
    # N:M groups run along input channels; a depthwise kernel has one input channel each.
    kinds = PRUNABLE if structure in ("unstructured", "channels") else ("Conv2D", "Dense")
    prunable = {s.layer.name for s in graph.steps
                if type(s.layer).__name__ in kinds and s.layer.name not in skipped}
    if structure == "channels":
        masked = {}
        for group in channel_groups(graph, prunable):
            if group.frozen is None:
                masked.update({name: (group.name, scorer) for name, scorer in group.masked.items()})

        def wrap(layer):
            group, scorer = masked[layer.name]
            return ChannelMasked(clone_layer(layer), schedule, group=group, scored_by=scorer,
                                 name=layer.name)
    else:
        if structure != "unstructured":
            _check_n_m(graph, prunable, int(structure.split(":")[1]))
        masked = prunable

        def wrap(layer):
            return PruneLowMagnitude(clone_layer(layer), schedule, structure=structure,
                                     scope=scope, name=layer.name)

    return replay(model, lambda step, tensors: call_like(
        step, wrap(step.layer) if step.layer.name in masked else clone_layer(step.layer), tensors))


def _check_n_m(graph, names: set, m: int) -> None:
    for step in graph.steps:
        if step.layer.name in names:
            channels = step.layer.input.shape[-1]
            if channels % m:
                raise UnsupportedLayerError(
                    step.layer.name, type(step.layer).__name__,
                    f"has {channels} input channels, not a multiple of M={m}: give it a "
                    f"multiple of {m} inputs or leave it out with skip=[...].",
                )
