"""Turn any model name into a valid, readable C identifier."""

import re
from typing import Iterable

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while alignas alignof and asm bool catch class constexpr
delete explicit export false friend mutable namespace new noexcept not nullptr operator or
private protected public template this throw true try typename using virtual wchar_t
""".split())


# Arduino sketch (folder) names: at most 63 characters.
MAX_LENGTH = 63


def c_identifier(name: str, fallback: str = "model", taken: Iterable[str] = ()) -> str:
    """A C/C++ identifier (and Arduino sketch name) from `name`: non-ASCII-alphanumerics
    become '_', no leading digit or underscore, no keyword, at most 63 characters, and
    different from every name in `taken` (a `_2`, `_3`, ... suffix).

    >>> c_identifier("my model-v2")
    'my_model_v2'
    >>> c_identifier("2nd")
    'm_2nd'
    >>> c_identifier("net", taken={"net"})
    'net_2'
    """
    identifier = re.sub(r"[^A-Za-z0-9_]", "_", name)
    identifier = re.sub(r"_+", "_", identifier).strip("_") or fallback
    if identifier[0].isdigit():
        identifier = f"m_{identifier}"
    identifier = identifier[:MAX_LENGTH].rstrip("_")
    if identifier in C_KEYWORDS:
        identifier = f"{identifier}_"
    taken = set(taken)
    unique, count = identifier, 1
    while unique in taken:
        count += 1
        unique = f"{identifier[:MAX_LENGTH - len(str(count)) - 1]}_{count}"
    return unique
