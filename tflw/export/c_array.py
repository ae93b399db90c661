"""The flatbuffer as a C array: `model_data.h` / `model_data.cc`.

```python
files = c_array_files(model_bytes, model_name="mnist cnn")
files["model_data.cc"]   # alignas(16) const unsigned char g_model_data[] = {...};
```
"""

from tflw.export.templates import render

ARRAY_NAME = "g_model_data"
COMPRESSED_ARRAY_NAME = "g_model_compressed_data"
BYTES_PER_LINE = 12


def c_array_body(data: bytes) -> str:
    lines = []
    for start in range(0, len(data), BYTES_PER_LINE):
        chunk = data[start:start + BYTES_PER_LINE]
        lines.append("  " + ", ".join(f"0x{byte:02x}" for byte in chunk) + ",")
    return "\n".join(lines)


def c_array_files(data: bytes, model_name: str, array_name: str = ARRAY_NAME,
                  file_stem: str = "model_data") -> dict:
    """File name -> text of the header and source (`<file_stem>.h/.cc`) holding `data`."""
    values = dict(
        model_name=model_name.replace("\n", " "),
        guard=f"TFLW_{array_name.upper()}_H_",
        array_name=array_name,
        byte_count=len(data),
        array_body=c_array_body(data),
        header=f"{file_stem}.h",
    )
    return {
        f"{file_stem}.h": render("model_data.h", **values),
        f"{file_stem}.cc": render("model_data.cc", **values),
    }
