"""Knowledge distillation on Keras's `keras.distillation`, composed with QAT and pruning.

```python
distiller = tflw.Distiller(student, teacher, temperature=4.0, alpha=0.1)
distiller.compile("adam", loss, metrics=["accuracy"]); distiller.fit(x, y)
tflw.Distiller(student, teacher, attention={"s_block2": "t_block2"})  # attention transfer
```
"""

from tflw.distillation.distiller import Distiller, teacher_logits
from tflw.distillation.hints import HintDistillation, hint_adapter
from tflw.distillation.relational import AttentionTransfer, SimilarityPreserving

__all__ = ["AttentionTransfer", "Distiller", "HintDistillation", "SimilarityPreserving",
           "hint_adapter", "teacher_logits"]
