"""C/C++ literals that mean exactly the value they were written from.

```python
c_float(1.0)          # '1.0f'  (never '1f': C++ reads that as a user-defined literal)
c_float(0.1)          # '0.1f'  (the shortest text that reads back as the same float32)
c_int_array([-128, 7], per_line=8)   # '    -128, 7'
```
"""

import math
from typing import Iterable

import numpy as np

from tflw.errors import ConversionError


def c_float(value: float) -> str:
    """A `float` literal that C and C++ read back as the float32 nearest `value`.

    numpy prints the shortest digits that round-trip in float32, always with a decimal
    point or an exponent, so the `f` suffix makes a valid literal.

    Raises:
        ConversionError: `value` is NaN or infinite (C has no literal for them).

    >>> c_float(1), c_float(-2.5e-07), c_float(3e38)
    ('1.0f', '-2.5e-07f', '3e+38f')
    """
    with np.errstate(over="ignore"):  # 1e39 becomes inf, refused below
        single = np.float32(value)
    if not math.isfinite(float(single)):
        raise ConversionError(
            f"cannot write {value!r} as a C float literal: it is not finite in float32. "
            "Clean the data (NaN/Inf) or rescale values beyond 3.4e38.")
    return f"{str(single)}f"


def c_values(literals: Iterable[str], per_line: int, indent: str = "    ") -> str:
    """Literals as the body of a C initializer list, `per_line` to a line."""
    items = list(literals)
    rows = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(f"{indent}{row}" for row in rows)


def c_int_array(values: np.ndarray, per_line: int) -> str:
    """The integers of `values` as an initializer-list body (decimal, no suffix: they
    initialize an array of a declared integer type, whose range the caller checks)."""
    return c_values((str(int(v)) for v in np.asarray(values).ravel()), per_line)
