"""Build TFLite-Micro from a source tree the user has, for the host or a Cortex-M4.

tflw never ships or downloads TFLite-Micro: it compiles the tree it is given, with the
source lists of the tree's own Makefile (`tensorflow/lite/micro/tools/make/sources.inc`)
and the third-party headers that Makefile downloads into
`tensorflow/lite/micro/tools/make/downloads/` (run its `third_party_downloads` target once).

```python
library = build_tflm(Path("~/tflite-micro").expanduser(), TARGETS["host"])
library.archive, library.include_dirs
```
"""

import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tflw.errors import FirmwareBuildError

DOWNLOADS = Path("tensorflow/lite/micro/tools/make/downloads")
# Headers the library needs from the downloads folder (the signal ops' kissfft is left out:
# tflw never emits those ops, so their kernels are not built).
THIRD_PARTY = {"flatbuffers": "include/flatbuffers/flatbuffers.h",
               "gemmlowp": "fixedpoint/fixedpoint.h",
               "ruy": "ruy/profiler/instrumentation.h"}
COMMON_FLAGS = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-fno-unwind-tables",
                "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections"]
CXX_FLAGS = ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]


@dataclass(frozen=True)
class Target:
    """A compiler and its flags: the host, or a Cortex-M4 with its FPU (Nano 33 BLE)."""

    name: str
    cxx: str
    cc: str
    flags: tuple
    optimization: str


TARGETS = {
    "host": Target("host", "g++", "gcc", ("-DTF_LITE_USE_CTIME",), "-O2"),
    "cortex-m4": Target("cortex-m4", "arm-none-eabi-g++", "arm-none-eabi-gcc",
                        ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                         "-DARM_MATH_CM4"), "-Os"),
}


@dataclass(frozen=True)
class TflmLibrary:
    """A built TFLite-Micro: the archive, and what code linking it needs."""

    archive: Path
    include_dirs: tuple
    defines: tuple
    target: Target


def _make_list(sources_inc: str, variable: str) -> list:
    """The paths of a `VAR := \\` list in TFLite-Micro's sources.inc."""
    block = re.search(rf"^{variable} :=\s*\\\n((?:.*\\\n)*.*)", sources_inc, re.M)
    if block is None:
        raise FirmwareBuildError(
            f"tensorflow/lite/micro/tools/make/sources.inc has no {variable} list: this "
            "TFLite-Micro tree is older or newer than tflw knows; report it to tflw.")
    return re.findall(r"\$\(TENSORFLOW_ROOT\)(\S+\.(?:cc|c))", block.group(1))


def library_sources(tree: Path, cmsis_nn: Optional[Path]) -> list:
    """Every source file of the library, as TFLite-Micro's Makefile lists them; with
    CMSIS-NN, each kernel that has a `kernels/cmsis_nn/` version uses it, and CMSIS-NN's
    own sources join."""
    inc = (tree / "tensorflow/lite/micro/tools/make/sources.inc").read_text()
    tests = set(_make_list(inc, "MICROLITE_TEST_SRCS"))
    micro = tree / "tensorflow/lite/micro"
    base = [p for folder in ("", "arena_allocator", "memory_planner", "tflite_bridge")
            for p in sorted((micro / folder).glob("*.cc"))]
    lite = [p for p in sorted((tree / "tensorflow").rglob("*.c*"))
            if p.suffix in (".c", ".cc") and micro not in p.parents
            and "experimental" not in p.parts and p.name != "array.cc"]
    core = [p for p in base + lite
            if str(p.relative_to(tree)) not in tests and not p.name.endswith("_test.cc")]
    kernels = [tree / path for path in _make_list(inc, "MICROLITE_CC_KERNEL_SRCS")]
    if cmsis_nn is not None:
        optimized = micro / "kernels/cmsis_nn"
        kernels = [optimized / k.name if (optimized / k.name).is_file() else k for k in kernels]
        # the float tables and kernels TFLite-Micro's cmsis_nn.inc leaves out
        kernels += sorted(p for p in (cmsis_nn / "Source").rglob("*.c")
                          if not p.name.endswith(("_f16.c", "_f32.c", "arm_nntables_flt.c")))
    return core + kernels


def check_tree(tree: Path, cmsis_nn: Optional[Path]) -> None:
    """Raise `FirmwareBuildError` unless `tree` (and `cmsis_nn`) can be built."""
    if not (tree / "tensorflow/lite/micro/micro_interpreter.h").is_file():
        raise FirmwareBuildError(
            f"'{tree}' is not a TFLite-Micro source tree (no tensorflow/lite/micro/"
            "micro_interpreter.h): give the folder of a clone of tensorflow/tflite-micro.")
    missing = [name for name, header in THIRD_PARTY.items()
               if not (tree / DOWNLOADS / name / header).is_file()]
    if missing:
        raise FirmwareBuildError(
            f"'{tree / DOWNLOADS}' lacks {', '.join(missing)}: run `make -f "
            "tensorflow/lite/micro/tools/make/Makefile third_party_downloads` in the tree once.")
    if cmsis_nn is not None and not (cmsis_nn / "Include/arm_nnfunctions.h").is_file():
        raise FirmwareBuildError(
            f"'{cmsis_nn}' is not a CMSIS-NN tree (no Include/arm_nnfunctions.h): give the "
            "folder of a clone of ARM-software/CMSIS-NN.")


def include_dirs(tree: Path, cmsis_nn: Optional[Path]) -> tuple:
    downloads = tree / DOWNLOADS
    dirs = [tree, downloads, downloads / "flatbuffers/include", downloads / "gemmlowp",
            downloads / "ruy"]
    if cmsis_nn is not None:
        dirs += [cmsis_nn, cmsis_nn / "Include"]
    return tuple(str(d) for d in dirs)


def compile_command(target: Target, source: Path, obj: Path, includes: tuple,
                    defines: tuple) -> list:
    language = [target.cc, "-std=c17"] if source.suffix == ".c" else [target.cxx, *CXX_FLAGS]
    return [*language, target.optimization, *target.flags, *COMMON_FLAGS, *defines,
            *(f"-I{d}" for d in includes), "-c", str(source), "-o", str(obj)]


def cache_folder(tree: Path, target: Target, cmsis_nn: Optional[Path]) -> Path:
    """One build folder per tree, target and kernel set, under TFLW_CACHE_DIR (default
    ~/.cache/tflw)."""
    key = hashlib.sha256(f"{tree.resolve()}|{target}|{cmsis_nn and cmsis_nn.resolve()}"
                         .encode()).hexdigest()[:16]
    root = Path(os.environ.get("TFLW_CACHE_DIR", Path.home() / ".cache" / "tflw"))
    return root / "tflm" / f"{target.name}-{'cmsis_nn' if cmsis_nn else 'reference'}-{key}"


def _compile(command: list, source: Path, obj: Path) -> Optional[str]:
    """None, or the compiler's complaint."""
    if obj.is_file() and obj.stat().st_mtime >= source.stat().st_mtime:
        return None
    done = subprocess.run(command, capture_output=True, text=True)
    return None if done.returncode == 0 else f"{source}:\n{done.stderr[-2000:]}"


def build_tflm(tree: Path, target: Target, cmsis_nn: Optional[Path] = None,
               jobs: int = os.cpu_count() or 1) -> TflmLibrary:
    """Compile the library of `tree` for `target` (objects kept between calls, so a second
    call only relinks) and archive it.

    Raises:
        FirmwareBuildError: the tree, its downloads or a compiler is missing, or a source
            does not compile (naming the file and the compiler's message).
    """
    tree = Path(tree)
    cmsis_nn = None if cmsis_nn is None else Path(cmsis_nn)
    check_tree(tree, cmsis_nn)
    for compiler in (target.cxx, target.cc):
        if shutil.which(compiler) is None:
            raise FirmwareBuildError(
                f"{compiler} is not installed: the {target.name} build needs it "
                f"(Debian: apt-get install {'g++' if target.name == 'host' else 'gcc-arm-none-eabi libnewlib-arm-none-eabi'}).")
    folder = cache_folder(tree, target, cmsis_nn)
    (folder / "obj").mkdir(parents=True, exist_ok=True)
    includes = include_dirs(tree, cmsis_nn)
    defines = ("-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0") if cmsis_nn else ()
    jobs_list = []
    for source in library_sources(tree, cmsis_nn):
        root = cmsis_nn if cmsis_nn and cmsis_nn in source.parents else tree
        # the path in the name: a linker map then says which file each byte of flash is from
        obj = folder / "obj" / ("__".join(source.relative_to(root).with_suffix(".o").parts))
        jobs_list.append((compile_command(target, source, obj, includes, defines), source, obj))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        failures = [f for f in pool.map(lambda job: _compile(*job), jobs_list) if f]
    if failures:
        raise FirmwareBuildError(
            f"{len(failures)} TFLite-Micro source(s) failed to compile for {target.name}; "
            f"the first:\n{failures[0]}")
    archive = folder / "libtflm.a"
    archive.unlink(missing_ok=True)
    ar = "ar" if target.name == "host" else "arm-none-eabi-ar"
    # q, not r: r would replace one of two members that share a name
    subprocess.run([ar, "qcs", str(archive), *(str(obj) for _, _, obj in jobs_list)],
                   check=True)
    return TflmLibrary(archive, includes, defines, target)
