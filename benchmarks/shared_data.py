"""The one way tests and benchmarks reach the real datasets in ../shared/data.

Nothing in the `tflw` package reads them: it ships its own small default data.
"""

from pathlib import Path
from typing import Optional

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def locate(file_name: str) -> Optional[Path]:
    """Path of `file_name` in ../shared/data, or None when it is not there."""
    path = SHARED_DATA / file_name
    return path if path.is_file() else None


def require(file_name: str) -> Path:
    """Path of `file_name`, or exit with a message that says what is missing."""
    path = locate(file_name)
    if path is None:
        raise SystemExit(
            f"benchmark data {SHARED_DATA / file_name} is missing: place the shared datasets "
            "beside the repository (../shared/data) to run this benchmark."
        )
    return path


def load_mnist(path: Path) -> tuple:
    """Full MNIST as float32 in [0, 1] with a channel axis: (x_train, y_train), (x_test, y_test)."""
    with np.load(path) as data:
        def images(key):
            return (data[key].astype(np.float32) / 255.0)[..., None]

        return (images("x_train"), data["y_train"].astype(np.int64)), (
            images("x_test"), data["y_test"].astype(np.int64))


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def load_cifar10(path: Path) -> tuple:
    """CIFAR-10 from the JPEG zip, float32 in [0, 1]: (x_train, y_train), (x_test, y_test)."""
    import zipfile

    import tensorflow as tf

    splits = {"train": ([], []), "test": ([], [])}
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) != 3 or not parts[2].endswith(".jpg"):
                continue
            images, labels = splits[parts[0]]
            images.append(tf.io.decode_jpeg(archive.read(name)).numpy())
            labels.append(CIFAR10_CLASSES.index(parts[1]))
    return tuple((np.stack(images).astype(np.float32) / 255.0, np.array(labels, np.int64))
                 for images, labels in (splits["train"], splits["test"]))


def load_gestures(path: Path, steps: int = 128) -> tuple:
    """AllGestureWiimote resampled to `steps` x 3 and standardized with the training
    set's per-axis mean and deviation: (x_train, y_train), (x_test, y_test)."""
    from tflw.data.series import fixed_length

    with np.load(path) as data:
        train, test = fixed_length(data["x_train"], steps), fixed_length(data["x_test"], steps)
        mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1))
        return (((train - mean) / std, data["y_train"].astype(np.int64)),
                ((test - mean) / std, data["y_test"].astype(np.int64)))
