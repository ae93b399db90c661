"""EWGS: element-wise gradient scaling, the backward pass of a k-bit rounding.

```python
q = discretize(v, ops.round(v), spacing=1.0, delta=0.2)   # forward: round(v)
```

Used by `LsqWeights(ewgs_delta=...)` and `ApotWeights(ewgs_delta=...)`; with delta = 0 it
is the plain straight-through estimator.
"""

from keras import ops

from tflw.conversion_trace import tracing_for_conversion

# EWGS's delta comes from a Hessian estimate that Lee et al. clip to stay positive; with
# APoT's dense levels next to zero that estimate is large, the scale 1 + delta * error goes
# negative and training diverges. Bounding delta keeps the scale within [0.5, 1.5].
MAX_DELTA = 1.0


def discretize(values, levels, spacing, delta: float):
    """Forward `levels` (the rounded `values`); backward, EWGS's scaled gradient.

    With e = (values - levels) / spacing, the rounding error in units of the local level
    spacing (so e is in [-1/2, 1/2] for every level, the zero level of APoT's non-uniform
    grid included), and g the incoming gradient:

        d levels / d values = 1 + delta * sign(g) * e

    Gradient descent moves a value against g, towards one of the two rounding boundaries
    around its level; with d the distance to that boundary (in spacings, 0 to 1), the
    factor is 1 + delta * (d - 1/2): a value that must travel farther to change level
    gets a larger step, one next to the boundary a smaller one. delta = 0 is the
    straight-through estimator.

    Args:
        values: the latent (float) values.
        levels: the rounded values the forward pass uses (no gradient flows through them).
        spacing: the distance between the two levels around each value (positive,
            broadcastable).
        delta: the scaling factor, 0 to `MAX_DELTA`.

    References:
        J. Lee, D. Kim, B. Ham, "Network Quantization with Element-wise Gradient Scaling",
        CVPR 2021.
    """
    delta = check_delta(delta)
    levels = ops.stop_gradient(levels)
    if delta == 0.0 or tracing_for_conversion():
        return _straight_through(values, levels)
    error = ops.stop_gradient((values - levels) / spacing)

    @ops.custom_gradient
    def scaled(x):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            return upstream * (1.0 + delta * ops.sign(upstream) * error)

        return _straight_through(x, levels), grad

    return scaled(values)


def _straight_through(values, levels):
    # exactly `levels` forward (values - stop_gradient(values) is 0, where
    # values + stop_gradient(levels - values) can be one float32 ulp off), gradient 1
    return levels + (values - ops.stop_gradient(values))


def check_delta(delta: float) -> float:
    """`delta` as a float, or ValueError when it is outside [0, MAX_DELTA]."""
    if not 0.0 <= float(delta) <= MAX_DELTA:
        raise ValueError(f"EWGS delta must be in [0, {MAX_DELTA}], got {delta}")
    return float(delta)
