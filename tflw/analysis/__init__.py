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
from tflw.analysis.plots import pareto_front, plot_layers, plot_pareto
from tflw.analysis.report import write_report

__all__ = ["Analysis", "analyze", "information_density", "keras_costs", "netscore",
           "pareto_front", "plot_layers", "plot_pareto", "summary", "write_report"]
