"""Magnitude pruning for Keras 3 models: schedules, masks kept through QAT, real shrinking.

```python
pruned = tflw.prune_model(model, tflw.PolynomialDecay(0.0, 0.8, 0, 2000), structure="2:4")
pruned.compile(...); pruned.fit(x, y, callbacks=[tflw.UpdatePruningStep()])
qat = tflw.quantize_model(pruned)        # masks stay applied to the int8 weights
small = tflw.strip_pruning(pruned)       # or: plain Keras, channels physically removed
```
"""

from tflw.pruning.callbacks import UpdatePruningStep, layer_sparsity, pruned_layers
from tflw.pruning.one_shot import prune_channels
from tflw.pruning.prune_model import default_skipped, prune_model
from tflw.pruning.schedules import ConstantSparsity, CubicSparsity, PolynomialDecay, PruningSchedule
from tflw.pruning.strip import strip_pruning
from tflw.pruning.wrappers import ChannelMasked, PruneLowMagnitude

__all__ = [
    "ChannelMasked",
    "ConstantSparsity",
    "CubicSparsity",
    "PolynomialDecay",
    "PruneLowMagnitude",
    "PruningSchedule",
    "UpdatePruningStep",
    "default_skipped",
    "layer_sparsity",
    "prune_channels",
    "prune_model",
    "pruned_layers",
    "strip_pruning",
]
