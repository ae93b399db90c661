"""Fit a model to a board: a budgeted search over weight bits and channels per layer,
and width and input resolution for models given as builders.

```python
fit = tflw.fit_board(model, "nano33ble", (x_train, y_train), (x_val, y_val))
print(fit.summary())
```
"""

from tflw.search.fit_board import FitResult, Trial, fit_board
from tflw.search.problem import Config
from tflw.search.ray_executor import RayExecutor
from tflw.search.resolution import resize_inputs, scaled_shape

__all__ = ["Config", "FitResult", "RayExecutor", "Trial", "fit_board", "resize_inputs",
           "scaled_shape"]
