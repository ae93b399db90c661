"""The documentation site builds without a warning, its benchmark pages are what the JSON
gives, and every guide's Python runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import docs as benchmark_docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)


def python_blocks(page: Path) -> str:
    """The page's ```python blocks, in order, with their `--8<--` includes expanded as
    pymdownx.snippets expands them."""
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    return "\n".join(SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(), block)
                     for block in blocks)


PAGES_WITH_CODE = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
                         if python_blocks(p))


def test_the_site_builds_with_no_warning(tmp_path):
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                            str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "fit_board" in api and "quantize_model" in api  # the docstrings were rendered


def test_benchmark_pages_are_what_the_json_gives():
    assert list(benchmark_docs.differing(benchmark_docs.pages())) == [], \
        "run python -m benchmarks.docs and commit docs/benchmarks/"


def test_every_guide_has_code_to_run():
    assert {"getting-started.md", "guides/qat.md", "guides/ptq.md",
            "guides/fit-board.md"} <= set(PAGES_WITH_CODE)


@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_the_guide_runs_as_written(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(python_blocks(DOCS / page), str(DOCS / page), "exec"), {})
