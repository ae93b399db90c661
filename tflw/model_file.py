"""Open a model given as a file path: `.keras` with Keras 3, legacy `.h5` with `tf_keras`."""

import importlib
import os
import warnings
from pathlib import Path

from tflw.errors import LegacyModelFileWarning, ModelFileError


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"


def _load_h5(path: Path):
    """A Keras 2 `.h5` file through `tf_keras` (Keras 3 cannot read many of them, e.g. a
    DepthwiseConv2D saved with `groups`), else through Keras 3 (an `.h5` Keras 3 wrote)."""
    import keras
    import tf_keras

    try:
        model = tf_keras.models.load_model(path, compile=False)
    except Exception as legacy_error:  # h5py and Keras raise OSError/ValueError/KeyError alike
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as error:
            raise ModelFileError(
                f"cannot load '{path}': neither tf_keras ({_first_line(legacy_error)}) nor "
                f"Keras 3 ({_first_line(error)}) reads it. Open it where it was made and save "
                "it again (model.save('model.h5') with that Keras), or give a .keras file."
            ) from error
    warnings.warn(f"'{path}' is a legacy Keras 2 file: loaded with tf_keras; it is quantized "
                  "and exported as a tf_keras model.", LegacyModelFileWarning, stacklevel=3)
    return model


def register_layers() -> None:
    """Make Keras able to read tflw's layers from a saved model: each registers itself
    when its module loads (quantized layers, shifts, pruning wrappers and schedules)."""
    for module in ("tflw.models", "tflw.pruning", "tflw.quantization"):
        importlib.import_module(module)


def load_model(model):
    """`model` itself, or the model saved at a path: `.keras` with Keras 3 (tflw's layers
    known), `.h5` with `tf_keras` (a `LegacyModelFileWarning` says so).

    Example:
        >>> qat.save("qat.keras")
        >>> qat = tflw.load_model("qat.keras")   # in a new session too

    Raises:
        ModelFileError: the file is missing, or neither Keras reads it.
    """
    if not isinstance(model, (str, os.PathLike)):
        return model
    import keras

    register_layers()

    path = Path(model)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist: give a .keras or .h5 file path.")
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _load_h5(path)
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # Keras raises ValueError/OSError/zipfile errors alike
        raise ModelFileError(
            f"cannot load '{path}' as a Keras model ({_first_line(error)}). Give the .keras "
            "file model.save('model.keras') writes, or a legacy Keras 2 .h5 file."
        ) from error
