"""The README's example runs as written and does what it says."""

import re
from pathlib import Path

import numpy as np

from tests.export.sketch_compiler import assert_compiles

README = Path(__file__).resolve().parents[1] / "README.md"


def example_block() -> str:
    text = README.read_text()
    section = text[text.index("## Example"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_trains_exports_and_matches_tflite_micro(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example_block(), str(README), "exec"), namespace)
    check, y_test = namespace["check"], namespace["y_test"]
    assert (tmp_path / "build" / "mnist" / "model.tflite").is_file()
    assert check.parity and check.argmax_agreement >= 0.99
    assert np.mean(check.outputs[0].argmax(-1) == y_test) > 0.8  # chance: 0.1
    # MNIST's whole-number pixels once became `1f` literals that no C++ compiler accepts
    assert_compiles(tmp_path / "build" / "mnist", tmp_path)
