"""Small datasets shipped with tflw, so the demo and tests need no download."""

from importlib import resources

import numpy as np


def load_mnist_subset() -> tuple:
    """6,000 train / 1,000 test MNIST digits, as floats in [0, 1] with a channel axis.

    Returns:
        ((x_train, y_train), (x_test, y_test)); x has shape (n, 28, 28, 1), float32.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_mnist_subset()
    """
    with resources.files(__name__).joinpath("mnist_subset.npz").open("rb") as file:
        data = np.load(file)
        arrays = {key: data[key] for key in data.files}
    return (
        (_as_float_images(arrays["x_train"]), arrays["y_train"].astype(np.int64)),
        (_as_float_images(arrays["x_test"]), arrays["y_test"].astype(np.int64)),
    )


def _as_float_images(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) / 255.0)[..., None]
