"""Knowledge distillation on Keras's `keras.distillation`, composed with QAT and pruning.

```python
distiller = tflw.Distiller(student, teacher, temperature=4.0, alpha=0.1)
distiller.compile("adam", loss, metrics=["accuracy"]); distiller.fit(x, y)
```
"""

from tflw.distillation.distiller import Distiller, teacher_logits
from tflw.distillation.hints import HintDistillation, hint_adapter

__all__ = ["Distiller", "HintDistillation", "hint_adapter", "teacher_logits"]
