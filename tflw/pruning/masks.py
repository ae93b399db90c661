"""Pruning masks from weight magnitudes: unstructured, N:M and whole channels.

Masks are computed on the host (numpy) at the steps the schedule names, so the same code
serves every Keras backend; the training graph only multiplies by them.

```python
mask = magnitude_mask(np.abs(kernel), 0.8)           # 80 % of weights to zero
mask = n_m_mask(kernel, n=2, m=4, axis=-2)           # 2 of every 4 input weights kept
keep = magnitude_mask(channel_scores(kernel), 0.5)   # half of the output channels
```
"""

from typing import Optional, Sequence

import numpy as np


def magnitude_mask(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """1 where `scores` are among the largest (1 - sparsity) fraction, else 0.

    Exactly round(sparsity * size) entries are zero; ties go to the lower index.
    """
    flat = np.asarray(scores, np.float64).ravel()
    mask = np.ones(flat.size, np.float32)
    pruned = int(round(sparsity * flat.size))
    if pruned:
        mask[np.argsort(flat, kind="stable")[:pruned]] = 0.0
    return mask.reshape(np.shape(scores))


def global_masks(scores: Sequence[np.ndarray], sparsity: float) -> list:
    """`magnitude_mask` over several tensors at once: one threshold for all of them."""
    joint = magnitude_mask(np.concatenate([np.ravel(s) for s in scores]), sparsity)
    ends = np.cumsum([np.size(s) for s in scores])[:-1]
    return [part.reshape(np.shape(s)) for part, s in zip(np.split(joint, ends), scores)]


def n_m_mask(weights: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """Keep the `n` largest |w| in every group of `m` consecutive weights along `axis`
    (the input-channel axis, as sparse tensor cores and N:M kernels read them)."""
    moved = np.moveaxis(np.abs(np.asarray(weights)), axis, -1)
    length = moved.shape[-1]
    if length % m:
        raise ValueError(f"{length} input channels are not a multiple of M={m}")
    groups = moved.reshape(*moved.shape[:-1], length // m, m)
    rank = np.argsort(np.argsort(-groups, axis=-1, kind="stable"), axis=-1, kind="stable")
    mask = (rank < n).astype(np.float32).reshape(moved.shape)
    return np.moveaxis(mask, -1, axis)


def channel_scores(kernel: np.ndarray, scale: Optional[np.ndarray] = None, norm: str = "l2") -> np.ndarray:
    """Importance of each output channel (last axis): the L1 or L2 norm of its filter,
    times |scale| when a BatchNorm multiplies it (gamma / sqrt(var + eps)), so a filter
    that BatchNorm shrinks away counts as small."""
    flat = np.asarray(kernel).reshape(-1, np.shape(kernel)[-1])
    scores = np.abs(flat).sum(0) if norm == "l1" else np.sqrt((flat ** 2).sum(0))
    return scores if scale is None else scores * np.abs(scale)


def sparsity_of(array: np.ndarray) -> float:
    """Fraction of exact zeros."""
    array = np.asarray(array)
    return float(np.mean(array == 0)) if array.size else 0.0
