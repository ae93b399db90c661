"""The one way tests and benchmarks reach the real datasets in ../shared/data.

Nothing in the `tflw` package reads them: it ships its own small default data.
`TFLW_SHARED_DATA` names another folder holding the same files (a machine that trains
without the checkout's neighbours, e.g. a GPU machine sent only the repository).
"""

import os
from pathlib import Path
from typing import Optional

import numpy as np

SHARED_DATA = Path(os.environ.get("TFLW_SHARED_DATA")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")


def locate(*file_names: str) -> Optional[Path]:
    """Path of the first of `file_names` in the shared data folder, or None when none is there."""
    for file_name in file_names:
        path = SHARED_DATA / file_name
        if path.is_file():
            return path
    return None


def require(*file_names: str) -> Path:
    """Path of the first of `file_names`, or exit with a message that says what is missing."""
    path = locate(*file_names)
    if path is None:
        raise SystemExit(
            f"benchmark data {SHARED_DATA / file_names[0]} is missing: place the shared "
            "datasets beside the repository (../shared/data), or name their folder in "
            "TFLW_SHARED_DATA, to run this benchmark."
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
# The shared zip, or the same JPEGs packed by `pack_cifar10`: either will do.
CIFAR10_FILES = ("cifar10-jpeg.zip", "cifar10-jpeg.npz")


def load_cifar10(path: Path) -> tuple:
    """CIFAR-10 from the JPEG zip (or its `pack_cifar10` form), float32 in [0, 1]:
    (x_train, y_train), (x_test, y_test)."""
    decode = _jpeg_decoder()
    splits = _cifar10_jpegs(path)
    return tuple((np.stack([decode(j) for j in jpegs]).astype(np.float32) / 255.0,
                  np.array(labels, np.int64))
                 for jpegs, labels in (splits["train"], splits["test"]))


def pack_cifar10(source: Path, target: Path) -> None:
    """Write the zip's JPEGs into one .npz, per split their bytes end to end, the offsets
    and the labels: 56 MB instead of the zip's 62 (60,000 entries' headers), small enough
    to send to a GPU machine beside the repository (64 MiB in all):

        python -m benchmarks.shared_data pack-cifar10 .data/cifar10-jpeg.npz
    """
    arrays = {}
    for split, (jpegs, labels) in _cifar10_jpegs(source).items():
        arrays[f"{split}_bytes"] = np.frombuffer(b"".join(jpegs), np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(j) for j in jpegs])
        arrays[f"{split}_labels"] = np.array(labels, np.int64)
    np.savez(target, **arrays)


def _cifar10_jpegs(path: Path) -> dict:
    """{"train" | "test": (JPEG bytes list, labels list)}, in the zip's sorted order."""
    import zipfile

    splits = {"train": ([], []), "test": ([], [])}
    if path.suffix == ".npz":
        with np.load(path) as data:
            for split, (jpegs, labels) in splits.items():
                flat, offsets = data[f"{split}_bytes"].tobytes(), data[f"{split}_offsets"]
                jpegs += [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
                labels += data[f"{split}_labels"].tolist()
        return splits
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) != 3 or not parts[2].endswith(".jpg"):
                continue
            jpegs, labels = splits[parts[0]]
            jpegs.append(archive.read(name))
            labels.append(CIFAR10_CLASSES.index(parts[1]))
    return splits


def _jpeg_decoder():
    """bytes -> (H, W, 3) uint8: TensorFlow's decoder, or Pillow's where TensorFlow is
    absent (a JAX-only GPU machine). With the accurate integer IDCT the two agree on
    every pixel (measured on 2,000 images); TensorFlow's default, the fast one, is off
    by up to 5 levels in 64 % of them."""
    try:
        import tensorflow as tf
    except ImportError:
        import io

        from PIL import Image

        return lambda data: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return lambda data: tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE").numpy()


def load_gestures(path: Path, steps: int = 128) -> tuple:
    """AllGestureWiimote resampled to `steps` x 3 and standardized with the training
    set's per-axis mean and deviation: (x_train, y_train), (x_test, y_test)."""
    from tflw.data.series import fixed_length

    with np.load(path) as data:
        train, test = fixed_length(data["x_train"], steps), fixed_length(data["x_test"], steps)
        mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1))
        return (((train - mean) / std, data["y_train"].astype(np.int64)),
                ((test - mean) / std, data["y_test"].astype(np.int64)))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Pack the shared CIFAR-10 zip (pack_cifar10).")
    parser.add_argument("command", choices=["pack-cifar10"])
    parser.add_argument("target", type=Path, help="the .npz to write")
    target = parser.parse_args().target
    target.parent.mkdir(parents=True, exist_ok=True)
    pack_cifar10(require(CIFAR10_FILES[0]), target)
    print(f"{target}: {target.stat().st_size:,} bytes")
