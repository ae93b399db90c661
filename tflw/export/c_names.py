"""Turn any model name into a valid, readable C identifier."""

import re

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while alignas alignof and asm bool catch class constexpr
delete explicit export false friend mutable namespace new noexcept not nullptr operator or
private protected public template this throw true try typename using virtual wchar_t
""".split())


def c_identifier(name: str, fallback: str = "model") -> str:
    """A C/C++ identifier from `name`: non-ASCII-alphanumerics become '_', no leading digit,
    no keyword.

    >>> c_identifier("my model-v2")
    'my_model_v2'
    >>> c_identifier("2nd")
    'm_2nd'
    """
    identifier = re.sub(r"[^A-Za-z0-9_]", "_", name)
    identifier = re.sub(r"_+", "_", identifier).strip("_") or fallback
    if identifier[0].isdigit():
        identifier = f"m_{identifier}"
    if identifier in C_KEYWORDS:
        identifier = f"{identifier}_"
    return identifier
