"""Find and fill the firmware templates of `firmware_templates/`."""

import string
from importlib import resources
from pathlib import Path


def template_folder() -> Path:
    """Where the templates are: the repository folder in a source checkout, else the copy
    that setup.py installs as package data `tflw.firmware_templates`."""
    checkout = Path(__file__).resolve().parents[2] / "firmware_templates"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("tflw") / "firmware_templates"))


def render(relative_path: str, **values) -> str:
    """Fill `${name}` placeholders; a missing value is an error, not a blank."""
    text = (template_folder() / relative_path).read_text()
    return string.Template(text).substitute(**values)
