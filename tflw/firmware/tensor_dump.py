"""Which op's kernel makes two firmware builds differ: every tensor of every sample, as
`check_main.cc -DTFLW_DUMP_TENSORS` writes them, compared op by op.

```python
ops = op_differences(model_bytes, dump_reference, dump_cmsis_nn)
[(op["op"], op["differing_values"], op["max_lsb_difference"], op["inputs_identical"]) ...]
```
"""

import numpy as np
from tflite_micro.tensorflow.lite.micro.compression import model_editor


def read_dump(raw: bytes) -> list:
    """One {tensor index: bytes} per sample (a sample's indices rise; a fall starts the next)."""
    samples, position, last = [], 0, None
    while position < len(raw):
        index, size = np.frombuffer(raw, np.uint32, 2, position)
        position += 8
        if last is None or index <= last:
            samples.append({})
        samples[-1][int(index)] = raw[position:position + int(size)]
        position += int(size)
        last = index
    return samples


def op_differences(model_bytes: bytes, reference: bytes, other: bytes) -> list:
    """Per op in execution order: its name, how many of its output values differ between
    the two dumps (over all samples), by how many LSB at most, and whether all its inputs
    were identical (then this op's kernel is where the difference starts)."""
    subgraph = model_editor.read(model_bytes).subgraphs[0]
    first, second = read_dump(reference), read_dump(other)
    rows = []
    for position, op in enumerate(subgraph.operators):
        differing, largest = 0, 0
        for output in op.outputs:
            dtype = np.dtype(output.numpy_dtype)
            for a, b in zip(first, second):
                if output.index not in a or output.index not in b:
                    continue
                gap = np.abs(np.frombuffer(a[output.index], dtype).astype(np.int64)
                             - np.frombuffer(b[output.index], dtype).astype(np.int64))
                differing += int(np.count_nonzero(gap))
                largest = max(largest, int(gap.max(initial=0)))
        inputs_identical = all(a.get(t.index) == b.get(t.index)
                               for t in op.inputs if t is not None for a, b in zip(first, second))
        rows.append({"position": position, "op": op.opcode_name or str(op.opcode),
                     "differing_values": differing, "max_lsb_difference": largest,
                     "inputs_identical": inputs_identical})
    return rows
