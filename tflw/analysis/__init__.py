"""Know before you flash: per-op costs, the measured arena, board budgets, fair scores.

```python
analysis = tflw.analyze(model, board="nano33ble")
print(analysis)
tflw.analysis.netscore(accuracy=0.97, parameters=analysis.parameters, macs=analysis.macs)
```
"""

from tflw.analysis.analyze import Analysis, analyze, summary
from tflw.analysis.keras_costs import keras_costs
from tflw.analysis.metrics import information_density, netscore

__all__ = ["Analysis", "analyze", "information_density", "keras_costs", "netscore", "summary"]
