"""CIFAR training as the papers run it: augmented batches and a cosine learning rate.

```python
data = AugmentedImages(x_train, y_train, batch_size=128, seed=0)
model.compile(keras.optimizers.Adam(cosine_learning_rate(1e-3, epochs=200, steps=len(data))), ...)
model.fit(data, epochs=200)
```

NumPy only, so that it runs on every Keras backend (the GPU machine has no TensorFlow).
"""

import math

import keras
import numpy as np

# He et al. 2016, CIFAR-10: 4 pixels of zero padding, a random 32x32 crop, a random flip.
_PAD = 4


class AugmentedImages(keras.utils.PyDataset):
    """Shuffled batches of `x` (N, H, W, C), each image shifted by up to 4 pixels (a crop
    of it zero-padded) and flipped left-right with probability 1/2, drawn anew each epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple:
        pick = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.x[pick]
        count, height, width = images.shape[:3]
        padded = np.pad(images, ((0, 0), (_PAD, _PAD), (_PAD, _PAD), (0, 0)))
        rows, cols = self.rng.integers(0, 2 * _PAD + 1, (2, count))
        flips = self.rng.random(count) < 0.5
        out = np.empty_like(images)
        for i in range(count):
            crop = padded[i, rows[i]:rows[i] + height, cols[i]:cols[i] + width]
            out[i] = crop[:, ::-1] if flips[i] else crop
        return out, self.y[pick]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))


def cosine_learning_rate(base: float, epochs: int, steps: int):
    """`base` decayed to 0 over `epochs` x `steps` along a half cosine (Loshchilov and
    Hutter 2017, without restarts), as the APoT and EWGS papers train."""
    return keras.optimizers.schedules.CosineDecay(base, decay_steps=max(epochs * steps, 1))
