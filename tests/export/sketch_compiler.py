"""Compile what export wrote, warnings as errors, against stub headers of TFLite-Micro's API
(`stubs/tflm_api.h`) and tflw's host Arduino shim: a sketch that would not build on a board
fails here, without a TFLite-Micro tree."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tflw.export.firmware import RESOLVER_METHODS
from tflw.export.templates import template_folder

STUBS = Path(__file__).with_name("stubs")
FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]
# A Cortex-M4 (Nano 33 BLE, Portenta M4 core): 32-bit int sizes and newlib's headers.
COMPILERS = {"g++": [], "arm-none-eabi-g++": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                                              "-mfpu=fpv4-sp-d16"]}


def installed_compilers() -> list:
    return [name for name in COMPILERS if shutil.which(name)]


def _resolver_stub(folder: Path) -> Path:
    """Every MicroMutableOpResolver method tflw can emit, as the stub class declares them."""
    methods = sorted(set(RESOLVER_METHODS.values()))
    (folder / "resolver_methods.inc").write_text(
        "".join(f"  TfLiteStatus {method}();\n" for method in methods))
    return folder


def compile_errors(out_dir: Path, work: Path) -> dict:
    """Compiler -> its diagnostics (empty when clean) for every C/C++ file under `out_dir`
    and each sketch, with each installed compiler."""
    include = _resolver_stub(work)
    sources = [path for pattern in ("*.cc", "*.cpp", "*.ino") for path in sorted(out_dir.rglob(pattern))]
    assert sources, f"nothing to compile in {out_dir}"
    diagnostics = {}
    for compiler in installed_compilers():
        messages = []
        for source in sources:
            command = [compiler, *FLAGS, *COMPILERS[compiler], "-x", "c++",
                       "-include", "Arduino.h", f"-I{template_folder() / 'host'}",
                       f"-I{STUBS}", f"-I{include}", f"-I{source.parent}", str(source)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or done.stderr:
                messages.append(f"{source.relative_to(out_dir)}:\n{done.stderr[-3000:]}")
        diagnostics[compiler] = "\n".join(messages)
    return diagnostics


def assert_compiles(out_dir: Path, work: Path) -> None:
    """Every file export wrote compiles with 0 errors and 0 warnings."""
    if not installed_compilers():
        pytest.skip("needs g++")
    diagnostics = compile_errors(Path(out_dir), Path(work))
    failed = {compiler: text for compiler, text in diagnostics.items() if text}
    assert not failed, json.dumps(failed, indent=1)[:6000]
