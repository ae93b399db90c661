import importlib

import keras
import pytest

import tflw
from tflw.errors import ModelTooLargeError

export_module = importlib.import_module("tflw.export.export")  # the module, not the function


def test_int8_weights_beyond_the_flash_budget_are_refused_before_conversion(tmp_path, monkeypatch):
    inputs = keras.Input((1000,), name="features")
    hidden = keras.layers.Dense(1200, name="wide")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(hidden))
    monkeypatch.setattr(export_module, "to_tflite", lambda *a: pytest.fail("converted first"))
    with pytest.raises(ModelTooLargeError) as raised:
        tflw.export(model, tmp_path / "out", board="nano33ble")
    budget = tflw.boards.get("nano33ble").model_flash_budget
    message = str(raised.value)
    assert "1,212,000 weights" in message and f"{1_212_000 - budget:,} B more" in message
    assert "wide (1,200,000 B)" in message
    assert not (tmp_path / "out").exists()
