"""Variable-length sensor series to the fixed-size windows a microcontroller model takes.

```python
windows = fixed_length(x_nan_padded, steps=128)   # (n, 500, 3) with NaN tails -> (n, 128, 3)
```
"""

import numpy as np

from tflw.errors import InputMismatchError


def fixed_length(series: np.ndarray, steps: int) -> np.ndarray:
    """Resample each NaN-padded series to `steps` samples by linear interpolation.

    Args:
        series: (n, max_steps, axes) floats; each series is valid up to its first
            all-NaN step (the UCR archive's padding convention).
        steps: output length.

    Returns:
        (n, steps, axes) float32 without NaN. A series of one valid step is repeated.

    Raises:
        InputMismatchError: a series has no valid step.
    """
    series = np.asarray(series, np.float32)
    out = np.empty((len(series), steps, series.shape[2]), np.float32)
    for index, one in enumerate(series):
        valid = ~np.isnan(one).any(axis=1)
        length = int(np.argmin(valid)) if not valid.all() else len(one)
        if length == 0:
            raise InputMismatchError(f"series {index} has no valid (non-NaN) first step")
        source = np.linspace(0.0, 1.0, length)
        target = np.linspace(0.0, 1.0, steps)
        out[index] = np.stack([np.interp(target, source, one[:length, axis])
                               for axis in range(one.shape[1])], axis=1)
    return out
