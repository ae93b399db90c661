"""What export writes for the board compiles: its literals mean their values, every export
kind's sketch builds with 0 warnings, and the stub headers it builds against here match
TFLite-Micro's sources (where TFLW_TFLM_DIR names a tree)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tflw
from tests.export.sketch_compiler import STUBS, assert_compiles
from tflw.errors import ArduinoLibraryWarning, ConversionError
from tflw.export.c_literals import c_float
from tflw.export.firmware import ARDUINO_LIBRARIES, RESOLVER_METHODS, library_notes

LITERAL = re.compile(r"-?\d+(\.\d+)?(e[+-]\d+)?f")


@settings(max_examples=2000, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_a_float_literal_reads_back_as_the_same_float32(value):
    literal = c_float(value)
    assert LITERAL.fullmatch(literal) and ("." in literal or "e" in literal), literal
    assert np.float32(float(literal[:-1])).tobytes() == np.float32(value).tobytes()


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_float_literals_compiled_by_gcc_hold_the_same_bits(tmp_path):
    bits = np.random.default_rng(0).integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    edges = np.array([0.0, -0.0, 1.0, -1.0, 16777216.0, 0.1, 1e-45, 1.17549435e-38,
                      3.4028235e38, -3.4028235e38], np.float32)
    values = np.concatenate([edges, values[np.isfinite(values)]])
    (tmp_path / "literals.cc").write_text(
        "#include <cstdio>\n#include <cstring>\n#include <cstdint>\n"
        f"const float kValues[] = {{{', '.join(map(c_float, values))}}};\n"
        "int main() { for (float v : kValues) { uint32_t b; std::memcpy(&b, &v, 4);\n"
        "  std::printf(\"%u\\n\", static_cast<unsigned>(b)); } return 0; }\n")
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-o",
                    str(tmp_path / "literals"), str(tmp_path / "literals.cc")], check=True)
    printed = subprocess.run([str(tmp_path / "literals")], capture_output=True, text=True,
                             check=True).stdout.split()
    np.testing.assert_array_equal(np.array(printed, np.uint64).astype(np.uint32),
                                  values.view(np.uint32))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e39])
def test_a_value_without_a_float32_literal_is_refused(value):
    with pytest.raises(ConversionError, match="not finite in float32"):
        c_float(value)


def two_output_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, [keras.layers.Dense(3, name="kind")(x),
                                keras.layers.Dense(1, name="size")(x)])


def test_a_two_output_export_compiles(tmp_path):
    x = np.round(np.random.default_rng(0).uniform(0, 4, (32, 8, 8, 1))).astype(np.float32)
    result = tflw.export(two_output_model(), tmp_path / "out", representative_data=x)
    assert len(result.info.outputs) == 2
    assert_compiles(result.out_dir, tmp_path)


def test_the_sketch_holds_the_sample_and_the_host_outputs_as_integer_codes(tmp_path):
    # whole-number inputs are what once came out as `1f`, which no C++ compiler accepts
    x = np.round(np.random.default_rng(1).uniform(0, 4, (8, 8, 8, 1))).astype(np.float32)
    result = tflw.export(two_output_model(), tmp_path / "out", representative_data=x)
    sketch = result.sketch_path.read_text()
    codes = result.info.inputs[0].quantize(x[0]).ravel()
    body = re.search(r"kSampleInput0\[\d+\] = \{(.*?)\};", sketch, re.S).group(1)
    np.testing.assert_array_equal(np.array(body.replace(",", " ").split(), int), codes)
    for index, (tensor, outputs) in enumerate(zip(result.info.outputs,
                                                  result.verification.outputs)):
        expected = tensor.quantize(outputs[0]).ravel()
        body = re.search(rf"kExpectedOutput{index}\[\d+\] = \{{(.*?)\}};", sketch, re.S).group(1)
        np.testing.assert_array_equal(np.array(body.replace(",", " ").split(), int), expected)
    assert "constexpr int kOutputCount = 2;" in sketch


def test_ops_an_arduino_library_lacks_are_named_in_a_warning_and_the_sketch(tmp_path):
    inputs = keras.Input((6,))
    outputs = keras.layers.Lambda(lambda t: keras.ops.min(t, axis=-1, keepdims=True))(
        keras.layers.Dense(4)(inputs))
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    with pytest.warns(ArduinoLibraryWarning, match="has no AddReduceMin"):
        result = tflw.export(keras.Model(inputs, outputs), tmp_path / "out",
                             representative_data=x)
    assert "Chirale_TensorFlowLite 2.0.0 cannot run this model" in result.sketch_path.read_text()
    assert_compiles(result.out_dir, tmp_path)


def tflm_tree(variable: str) -> Path:
    folder = os.environ.get(variable)
    if not folder:
        pytest.skip(f"set {variable} to a source tree to check against it")
    return Path(folder)


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("( ", "(").replace(" )", ")")


def stub_declarations() -> list:
    """(TFLite-Micro path, declaration) for each "// tflm: PATH" mark in the stub header."""
    lines = (STUBS / "tflm_api.h").read_text().splitlines()
    found = []
    for number, line in enumerate(lines):
        mark = re.match(r"\s*// tflm: (\S+)", line)
        if mark:
            rest = "\n".join(lines[number + 1:])
            end = len(rest.splitlines()[0]) if rest.lstrip().startswith("#") else re.search(
                r"[;{]", rest).start()
            found.append((mark.group(1), _normalized(rest[:end]).strip()))
    return found


def test_every_stub_declaration_is_in_tflite_micro_sources():
    tree = tflm_tree("TFLW_TFLM_DIR")
    declarations = stub_declarations()
    assert len(declarations) >= 15
    missing = [(path, declaration) for path, declaration in declarations
               if declaration not in _normalized((tree / path).read_text())]
    assert not missing, missing


def resolver_methods_callable_without_arguments(header: Path) -> set:
    """MicroMutableOpResolver methods whose parameters all have defaults."""
    text = _normalized(header.read_text())
    methods = set()
    for name, parameters in re.findall(r"TfLiteStatus (Add\w+)\(([^)]*(?:\([^)]*\))?[^)]*)\)", text):
        if all("=" in p for p in parameters.split(",") if p.strip()):
            methods.add(name)
    return methods


def test_every_resolver_method_tflw_emits_is_in_tflite_micro():
    tree = tflm_tree("TFLW_TFLM_DIR")
    header = tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h"
    available = resolver_methods_callable_without_arguments(header)
    assert set(RESOLVER_METHODS.values()) - available == set()


@pytest.mark.parametrize("library, variable", [
    ("Chirale_TensorFlowLite", "TFLW_CHIRALE_DIR"),
    ("tflite-micro-arduino-examples", "TFLW_ARDUINO_EXAMPLES_DIR"),
])
def test_the_arduino_library_table_matches_each_librarys_sources(library, variable):
    tree = tflm_tree(variable)
    header = tree / "src/tensorflow/lite/micro/micro_mutable_op_resolver.h"
    missing = set(RESOLVER_METHODS.values()) - resolver_methods_callable_without_arguments(header)
    entry = next(entry for entry in ARDUINO_LIBRARIES if entry["name"] == library)
    assert missing == set(entry["missing_resolver_methods"])


def test_library_notes_name_the_int16_kernels_a_library_runs_wrongly():
    info = type("Info", (), {
        "ops": [type("Op", (), {"name": name}) for name in ("CONV_2D", "MAX_POOL_2D", "MEAN")],
        "inputs": [type("Tensor", (), {"dtype": "INT16"})],
    })
    notes = library_notes(info)
    assert len(notes) == 1 and "int16 MAX_POOL_2D" in notes[0] and "CONV_2D" not in notes[0]
    info.inputs[0].dtype = "INT8"
    assert library_notes(info) == []
