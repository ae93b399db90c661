"""Writes the documentation's benchmark pages from `benchmarks/results/*.json`.

    python -m benchmarks.docs            # rewrite docs/benchmarks/
    python -m benchmarks.docs --check    # exit 1 if a page differs from what the JSON gives

Every number on those pages comes from a JSON file here, with the command that wrote it and
the date of the run; the prose beside the tables (`benchmarks/notes/<page>.md`) names rows,
never numbers. `tests/test_docs.py` checks that the committed pages are what this writes.
"""

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NOTES = ROOT / "benchmarks" / "notes"
PAGES_DIR = ROOT / "docs" / "benchmarks"


@dataclass(frozen=True)
class Page:
    slug: str
    title: str
    script: str  # benchmarks/<script>.py wrote the files
    files: tuple  # JSON stems, in the order shown
    tables: tuple = ("rows", "runs", "summary")  # the lists of rows shown as tables
    images: tuple = ()


PAGES = (
    Page("qat", "Int8 QAT against PTQ and tfmot", "qat_mnist", ("qat_mnist",)),
    Page("ptq", "Post-training quantization", "ptq", ("ptq",)),
    Page("pruning", "Pruning", "pruning", ("pruning",)),
    Page("distillation", "Distillation", "distill",
         ("distill_full_mlp256_e12", "distill_full_mlp256_e4", "distill_full",
          "distill_full_relational", "distill_3000")),
    Page("lowbit", "Low-bit weights and activations", "lowbit",
         ("lowbit", "lowbit_stripped", "lowbit_shared", "lowbit_apot_init", "lowbit_resnet8",
          "lowbit_resnet8_shared", "lowbit_resnet20_a8", "lowbit_resnet20_a8_shared",
          "lowbit_resnet20_w2a2", "lowbit_resnet20_w2a2_3epochs", "lowbit_resnet20_w2a2_cosine",
          "lowbit_resnet20_w2a2_distill", "lowbit_resnet20_w2a2_25epoch_float_trained",
          "lowbit_w2a2_mnist", "lowbit_w2a2_mnist_groups", "lowbit_w2a2_mnist_streams")),
    Page("zoo", "Model zoo", "zoo", ("zoo",)),
    Page("fit_board", "Fitting a board: fit_board", "fit_board", ("fit_board",),
         tables=("summary",), images=("fit_board.png",)),
    Page("arena", "The smallest tensor arena", "arena", ("arena",)),
    Page("arena_32bit", "The arena on a 32-bit MCU", "arena_32bit", ("arena_32bit",)),
    Page("shift", "Shift convolution: slices or a one-hot depthwise", "shift", ("shift",)),
    Page("sparse_shift", "Sparse Shift: learned moves", "sparse_shift", ("sparse_shift",)),
    Page("firmware", "Firmware on the host and on a Cortex-M4", "firmware", ("firmware",)),
    Page("backends", "Training on JAX and PyTorch", "backends", ("backends",)),
)

# Keys holding a fraction shown as a percentage.
_PERCENT_WORDS = ("accuracy", "agreement", "sparsity", "outputs_over")
_PERCENT_KEYS = {"mean", "spread", "fit", "uniform", "gap_to_float", "moved"}


def _is_percent(key: str) -> bool:
    return (key in _PERCENT_KEYS or any(word in key for word in _PERCENT_WORDS)
            or key.endswith(("_mean", "_spread", "_per_seed")))


def _cell(key: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if _is_percent(key) and abs(value) <= 1.0:
            return f"{100 * value:.2f} %"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(key, item) for item in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value))


def _table(rows: list) -> list:
    columns: list = []
    for row in rows:
        columns += [k for k, v in row.items() if _is_scalar(v) and k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(k, row.get(k)) for k in columns) + " |" for row in rows]
    return lines


def _provenance(data: dict, script: str) -> list:
    """The command and date of each model's latest run where the file records them per
    model (a rerun of one model rewrites the file's own command), else the file's."""
    runs = [{"model": name, **entry} for name, entry in data.get("models", {}).items()
            if isinstance(entry, dict) and ("command" in entry or "date" in entry)]
    if not runs and ("command" in data or "date" in data):
        runs = [data]
    if not runs:
        return [f"Written by `python -m benchmarks.{script}` with the settings below; the file "
                "predates the benchmarks recording their command and date."]
    lines = []
    for run in runs:
        model = f"{run['model']}: " if "model" in run else ""
        command = f"`{run['command']}`" if "command" in run else f"`benchmarks/{script}.py`"
        lines.append(f"- {model}{command}, run on {run.get('date', 'a date not recorded')}")
    return lines


def _machine(data: dict) -> str:
    machine = data.get("machine", {})
    parts = [f"{key} {machine[key]}" for key in ("cpu_count", "tensorflow", "keras",
                                                  "keras_backend", "tflite-micro") if key in machine]
    return "Machine: " + ", ".join(parts) + "." if parts else ""


def _section(stem: str, page: Page) -> list:
    data = json.loads((RESULTS / f"{stem}.json").read_text())
    lines = [f"## `{stem}.json`", "", *_provenance(data, page.script), ""]
    if _machine(data):
        lines += [_machine(data), ""]
    settings = {k: v for k, v in data.get("settings", {}).items() if _is_scalar(v)}
    extras = {k: v for k, v in data.items()
              if k not in ("machine", "settings", "command", "date") and _is_scalar(v)}
    for name, values in (("Settings", settings), ("Also recorded", extras)):
        if values:
            lines += [f"{name}: " + "; ".join(f"{k} = {_cell(k, v)}" for k, v in values.items())
                      + ".", ""]
    for key in page.tables:
        rows = data.get(key)
        if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
            lines += _table(rows) + [""]
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("machine", "settings", "models"):
            flat = {k: v for k, v in value.items() if _is_scalar(v)}
            if flat:
                lines += [f"{key}: " + "; ".join(f"{k} = {_cell(k, v)}" for k, v in flat.items())
                          + ".", ""]
    return lines


def page_text(page: Page) -> str:
    lines = [f"# {page.title}", "",
             "<!-- written by `python -m benchmarks.docs` from benchmarks/results/: "
             "do not edit -->", ""]
    note = NOTES / f"{page.slug}.md"
    if note.is_file():
        lines += [note.read_text().strip(), ""]
    lines += [f"![{image}]({image})" for image in page.images] + ([""] if page.images else [])
    for stem in page.files:
        lines += _section(stem, page)
    return "\n".join(lines).rstrip() + "\n"


def index_text() -> str:
    lines = ["# Benchmarks", "",
             "<!-- written by `python -m benchmarks.docs` from benchmarks/results/: "
             "do not edit -->", "",
             "Every table here is read from a JSON file in `benchmarks/results/` that a script in "
             "`benchmarks/` wrote; each section names the command and the date of its run. "
             "Rerun a script, then `python -m benchmarks.docs`, and the pages follow.", ""]
    lines += [f"- [{page.title}]({page.slug}.md): `python -m benchmarks.{page.script}`"
              for page in PAGES]
    return "\n".join(lines) + "\n"


def pages() -> dict:
    """{path under docs/benchmarks: bytes} of every page and image."""
    out = {"index.md": index_text().encode()}
    for page in PAGES:
        out[f"{page.slug}.md"] = page_text(page).encode()
        for image in page.images:
            out[image] = (RESULTS / image).read_bytes()
    return out


def differing(expected: dict, folder: Path = PAGES_DIR) -> Iterable[str]:
    on_disk = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    for name in sorted(set(expected) | on_disk):
        path = folder / name
        if name not in expected or not path.is_file() or path.read_bytes() != expected[name]:
            yield name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare: exit 1 and name the pages that differ")
    args = parser.parse_args(argv)
    expected = pages()
    stale = list(differing(expected))
    if args.check:
        for name in stale:
            print(f"docs/benchmarks/{name} differs from the JSON: run python -m benchmarks.docs")
        return 1 if stale else 0
    shutil.rmtree(PAGES_DIR, ignore_errors=True)
    PAGES_DIR.mkdir(parents=True)
    for name, content in expected.items():
        (PAGES_DIR / name).write_bytes(content)
    print(f"wrote {len(expected)} files to {PAGES_DIR.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
