"""Lay out a TFLite-Micro tree for `tflw firmware check` from checkouts you already have,
without the network: TFLite-Micro's Makefile would download flatbuffers, gemmlowp and ruy
into tensorflow/lite/micro/tools/make/downloads/; this copies them there from local
checkouts (flatbuffers at the tag the tree names, patched as its Makefile patches it).

python -m benchmarks.tflm_tree --tflm ~/src/tflite-micro --flatbuffers ~/src/flatbuffers \
    --gemmlowp ~/src/gemmlowp --ruy ~/src/ruy
"""

import argparse
import re
import shutil
import subprocess
from pathlib import Path

MAKE = Path("tensorflow/lite/micro/tools/make")


def flatbuffers_tag(tflm: Path) -> str:
    """The flatbuffers release the tree's Makefile downloads (e.g. v25.9.23)."""
    text = (tflm / MAKE / "third_party_downloads.inc").read_text()
    return re.search(r"flatbuffers/archive/refs/tags/(v[\d.]+)\.zip", text).group(1)


def lay_out(tflm: Path, sources: dict) -> None:
    downloads = tflm / MAKE / "downloads"
    downloads.mkdir(exist_ok=True)
    for name, source in sources.items():
        target = downloads / name
        if target.exists():
            print(f"{target} exists: left as it is")
            continue
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git"))
        if name == "flatbuffers":
            subprocess.run(["patch", "-p1", "-i", str(tflm / MAKE / "flatbuffers.patch")],
                           cwd=target, check=True)
        print(f"{target} <- {source}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm", required=True, type=Path)
    for name in ("flatbuffers", "gemmlowp", "ruy"):
        parser.add_argument(f"--{name}", required=True, type=Path)
    args = parser.parse_args()
    print(f"the tree's Makefile pins flatbuffers {flatbuffers_tag(args.tflm)}: check out that "
          "tag (its schema_generated.h refuses any other version)")
    lay_out(args.tflm, {"flatbuffers": args.flatbuffers, "gemmlowp": args.gemmlowp,
                        "ruy": args.ruy})


if __name__ == "__main__":
    main()
