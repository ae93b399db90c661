"""`tflw firmware check`: the exported sketch built against TFLite-Micro's sources and run
on the host and on qemu's Cortex-M4, bit for bit against the Python interpreter. The builds
run where TFLW_TFLM_DIR names a TFLite-Micro tree (with its third-party downloads); the
rest runs everywhere."""

import json
import os
import shutil
from pathlib import Path

import keras
import pytest

import tflw
from tests.conftest import all_layers_model
from tests.export.sketch_compiler import assert_compiles
from tflw.errors import FirmwareBuildError, ModelFileError
from tflw.export.firmware import sketch_arena_sizes
from tflw.firmware import FirmwareCheck, check_firmware, record_arena
from tflw.firmware.check import compressed_sketch, sketch_path
from tflw.firmware.flash_map import flash_by_part, part_of

MAP = """
Discarded input sections
 .text.unused   0x00000000       0x80 /w/check_main.o

Linker script and memory map

.text           0x00000000     0x2000
 *(.vectors)
 .vectors       0x00000000       0x40 /w/startup.o
 .text._ZN6tflite16MicroInterpreter6InvokeEv
                0x00000040      0x100 /c/libtflm.a(tensorflow__lite__micro__micro_interpreter.o)
                0x00000040                tflite::MicroInterpreter::Invoke()
 .text.conv     0x00000140      0x200 /c/libtflm.a(tensorflow__lite__micro__kernels__conv.o)
 .text.lut      0x00000340       0x30 /c/libtflm.a(tensorflow__lite__micro__kernels__decode_state_lut.o)
 .rodata.g_model_data
                0x00000370      0x400 /w/model_data.o
 *fill*         0x00000770        0x8
 .text.memcpy   0x00000778       0x20 /usr/lib/arm-none-eabi/newlib/libc.a(lib_a-memcpy.o)
.bss            0x20000000     0x1000
 .bss.tensor_arena
                0x20000000      0x800 /w/check_main.o
"""


def test_flash_is_split_by_where_each_input_section_comes_from():
    sizes = flash_by_part(MAP)
    assert sizes == {"model": 0x400, "sketch": 0, "runtime": 0x100, "kernels": 0x200,
                     "decode": 0x30, "c library and start-up": 0x40 + 0x20,
                     "total": 0x400 + 0x100 + 0x200 + 0x30 + 0x60}


def test_cmsis_nn_sources_count_as_kernels():
    assert part_of("/c/libtflm.a(Source__ConvolutionFunctions__arm_convolve_s8.o)") == "kernels"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, pixels):
    qat = tflw.quantize_model(all_layers_model(), calibration_data=pixels)
    out_dir = tmp_path_factory.mktemp("firmware") / "out"
    return tflw.export(qat, out_dir, sample_inputs=pixels[:20], name="all layers")


def test_a_folder_export_did_not_write_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="model.tflite"):
        check_firmware(tmp_path, tflm=tmp_path)


def test_a_folder_that_is_not_tflite_micro_is_refused_before_any_run(exported, tmp_path):
    with pytest.raises(FirmwareBuildError, match="not a TFLite-Micro source tree"):
        check_firmware(exported.out_dir, tflm=tmp_path)


def tflm_tree() -> Path:
    if not os.environ.get("TFLW_TFLM_DIR"):
        pytest.skip("set TFLW_TFLM_DIR to a TFLite-Micro tree to build firmware")
    return Path(os.environ["TFLW_TFLM_DIR"])


def test_the_sketch_built_on_the_host_is_bit_exact_with_the_python_interpreter(exported, pixels):
    check = check_firmware(exported.out_dir, tflm_tree(), inputs=pixels, samples=20)
    assert check.samples == 20 and check.bit_exact and check.max_lsb_difference == 0
    assert 0 < check.arena_used_bytes <= check.python_arena_bytes
    assert check.arena_used_bytes <= exported.report["arena_size_host"]  # the sketch's, 64-bit
    assert "Output values that differ from host TFLite-Micro: 0 of 10" in check.sketch_output


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-g++") is None,
                    reason="needs arm-none-eabi-g++ and qemu-system-arm")
def test_the_sketch_on_a_cortex_m4_is_bit_exact_and_its_flash_is_counted(exported):
    check = check_firmware(exported.out_dir, tflm_tree(), target="cortex-m4", samples=10)
    assert check.bit_exact
    host = check_firmware(exported.out_dir, tflm_tree(), samples=1)
    assert check.arena_used_bytes < host.arena_used_bytes  # 32-bit pointers
    # the planned tensors take the same bytes on both; only the persistent part shrinks
    assert check.arena_parts["planned"] == host.arena_parts["planned"] > 0
    assert check.arena_parts["persistent"] < host.arena_parts["persistent"]
    assert check.arena_parts["eval tensors"] * 2 == host.arena_parts["eval tensors"]
    # what export estimated for a 32-bit MCU from the host interpreter's recording
    estimate = exported.report["arena_32bit"]
    assert abs(estimate["arena_bytes"] - check.arena_used_bytes) <= 0.01 * check.arena_used_bytes
    assert estimate["non_persistent_bytes"] == check.arena_parts["planned"]
    assert check.arena_used_bytes <= exported.arena_size  # the sketch's kTensorArenaSize
    # the array (its length constant is folded into the code that reads it)
    assert exported.flatbuffer_bytes <= check.flash["model"] <= exported.flatbuffer_bytes + 4
    assert check.flash["kernels"] > 0 and check.flash["runtime"] > 0 and check.flash["decode"] == 0


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-g++") is None
                    or not os.environ.get("TFLW_CMSIS_NN_DIR"),
                    reason="needs arm-none-eabi-g++, qemu-system-arm and TFLW_CMSIS_NN_DIR")
def test_the_sketchs_arena_holds_cmsis_nn_on_a_cortex_m4(exported):
    check = check_firmware(exported.out_dir, tflm_tree(), target="cortex-m4", samples=2,
                           cmsis_nn=Path(os.environ["TFLW_CMSIS_NN_DIR"]))
    assert check.bit_exact
    reference = exported.report["arena_32bit"]["arena_bytes"]
    added = exported.report["cmsis_nn_arena"]["margin_bytes"]
    # what CMSIS-NN added, within what export allowed for it and the estimate's 1 %
    assert check.arena_used_bytes <= exported.arena_size
    assert check.arena_used_bytes - reference <= added + 0.01 * reference


def test_a_measured_arena_is_written_into_the_sketch_and_the_report(exported, tmp_path):
    out_dir = tmp_path / "copy"
    shutil.copytree(exported.out_dir, out_dir)
    measured = FirmwareCheck(target="cortex-m4", kernels="cmsis_nn", model="int8", samples=1,
                             identical_samples=1, max_lsb_difference=0, arena_used_bytes=5001,
                             python_arena_bytes=exported.arena_bytes, sketch_output="")
    assert record_arena(out_dir, measured) == 5008
    sketch = sketch_path(out_dir).read_text()
    assert sketch_arena_sizes(sketch) == {"mcu": 5008, "host": exported.report["arena_size_host"]}
    assert "cortex-m4 with CMSIS-NN kernels used 5001 bytes" in " ".join(
        sketch.replace("//", " ").split())
    assert json.loads((out_dir / "report.json").read_text())["firmware"]["arena_used_bytes"] == 5001
    assert_compiles(out_dir, tmp_path)


def test_the_compressed_sketch_follows_the_note_and_compiles(pixels, tmp_path):
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)  # the low-bit, compressed one
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    qat = tflw.quantize_model(model, calibration_data=pixels, weight_bits=4)
    result = tflw.export(qat, tmp_path / "out", sample_inputs=pixels[:8], compress="always")
    ops = len(result.info.ops)
    text = compressed_sketch(result.sketch_path.read_text(), result.report["lut"])
    assert f"tflite::MicroMutableOpResolver<{ops + 1}> resolver;" in text
    assert "  resolver.AddDecode();\n" in text and "GetModel(g_model_compressed_data)" in text
    assert sketch_arena_sizes(text) == {"mcu": result.report["lut"]["arena_size"],
                                        "host": result.report["lut"]["arena_size_host"]}
    folder = tmp_path / "compressed"
    folder.mkdir()
    (folder / "sketch.ino").write_text(text)
    for name in ("model_compressed_data.h", "model_compressed_data.cc"):
        shutil.copy(result.out_dir / name, folder / name)
    assert_compiles(folder, tmp_path)
