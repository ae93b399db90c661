"""Fit a model to a board: a budgeted search over weight bits and channels per layer.

```python
fit = tflw.fit_board(model, "nano33ble", (x_train, y_train), (x_val, y_val))
print(fit.summary())
```
"""

from tflw.search.fit_board import FitResult, Trial, fit_board
from tflw.search.problem import Config
from tflw.search.ray_executor import RayExecutor

__all__ = ["Config", "FitResult", "RayExecutor", "Trial", "fit_board"]
