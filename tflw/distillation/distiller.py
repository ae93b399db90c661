"""`Distiller`: Hinton-style knowledge distillation for MCU students, on Keras's own.

Keras 3 ships `keras.distillation.Distiller` (logits and feature losses, frozen teacher,
`compile`/`fit`/`evaluate`). tflw's `Distiller` is a thin subclass that adds what an
embedded workflow needs:

- the usual (temperature, alpha) arguments, with alpha the weight of the hard-label loss;
- `hints`: FitNets feature hints with an automatic 1x1 adapter when channels differ;
- cached teacher logits (`teacher_logits`), so CPU training does not run the teacher
  every epoch: `fit(x, (y, logits))`;
- students from `tflw.quantize_model` and/or `tflw.prune_model` (with
  `tflw.UpdatePruningStep`) train unchanged; `distiller.student` is the model to export.

```python
distiller = tflw.Distiller(student=tflw.quantize_model(small), teacher=big,
                           temperature=4.0, alpha=0.1)
distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
distiller.fit(x_train, y_train, epochs=3)
tflw.export(distiller.student, "build/student")
```

References:
    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015.
"""

from typing import Optional

import keras
import numpy as np
from keras.distillation import LogitsDistillation

from tflw.distillation.hints import HintDistillation, check_same_size, hint_adapter
from tflw.distillation.relational import AttentionTransfer, SimilarityPreserving


class Distiller(keras.distillation.Distiller):
    """Trains `student` on labels and on `teacher`'s temperature-softened outputs.

        loss = alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))
               + (1 - alpha) * hint_weight * sum_hints MSE(teacher_feature, adapter(student_feature))
               + (1 - alpha) * attention_weight * sum_attention AT(teacher, student features)
               + (1 - alpha) * similarity_weight * sum_similarity SP(teacher, student features)

    Both models must output logits (no softmax). The teacher is frozen and runs in
    inference mode.

    Args:
        student: the model to train (float, `quantize_model` output, `prune_model` output).
        teacher: a trained model with the same inputs and outputs.
        temperature: T, softening both distributions.
        alpha: weight of the hard-label loss, in [0, 1].
        hints: {student layer name: teacher layer name} feature hints.
        hint_weight: weight of each hint relative to the logits loss.
        attention: {student layer name: teacher layer name} attention transfer
            (`tflw.distillation.relational.AttentionTransfer`): features of the same
            height and width, any channel counts.
        attention_weight: its weight (beta; 1,000 in Zagoruyko & Komodakis's code).
        similarity: {student layer name: teacher layer name} similarity-preserving
            distillation (`tflw.distillation.relational.SimilarityPreserving`): any shapes.
        similarity_weight: its weight (gamma; 3,000 in Tung & Mori's CIFAR-10 runs).
        cached_teacher_logits: train on `fit(x, (y, teacher_logits))` instead of running
            the teacher (see `teacher_logits`); not with feature losses.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, temperature: float = 4.0,
                 alpha: float = 0.1, hints: Optional[dict] = None, hint_weight: float = 1.0,
                 attention: Optional[dict] = None, attention_weight: float = 1000.0,
                 similarity: Optional[dict] = None, similarity_weight: float = 3000.0,
                 cached_teacher_logits: bool = False, name: str = "distiller", **kwargs):
        hints = dict(hints or {})
        if cached_teacher_logits and (hints or attention or similarity):
            raise ValueError("feature losses need the teacher's features at every step: use "
                             "cached_teacher_logits=False with hints, attention or similarity")
        self.hint_adapters = []  # tracked, so the adapters train with the student
        # A KLDivergence instance, not the default "kl_divergence" string: in Keras 3.15 the
        # string resolves to the bare function, which skips the softmax and the T^2 factor.
        losses = [LogitsDistillation(temperature=temperature, loss=keras.losses.KLDivergence())]
        weights = [1.0]
        for student_layer, teacher_layer in hints.items():
            adapter = hint_adapter(student, student_layer, teacher, teacher_layer)
            if adapter is not None:
                self.hint_adapters.append(adapter)
            losses.append(HintDistillation(student_layer, teacher_layer, adapter))
            weights.append(hint_weight)
        for student_layer, teacher_layer in (attention or {}).items():
            check_same_size(student, student_layer, teacher, teacher_layer)
            losses.append(AttentionTransfer(student_layer, teacher_layer))
            weights.append(attention_weight)
        for student_layer, teacher_layer in (similarity or {}).items():
            losses.append(SimilarityPreserving(student_layer, teacher_layer))
            weights.append(similarity_weight)
        super().__init__(teacher, student, losses, distillation_loss_weights=weights,
                         student_loss_weight=alpha, name=name, **kwargs)
        self.temperature, self.alpha, self.hints = temperature, alpha, hints
        self.cached_teacher_logits = cached_teacher_logits
        self._step_teacher_logits = None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.cached_teacher_logits:
            y, self._step_teacher_logits = y
        return super().compute_loss(x, y, y_pred, sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self.cached_teacher_logits and isinstance(y, (tuple, list)):
            y = y[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def _extract_all_teacher_features(self, x):
        if self.cached_teacher_logits:
            return {"final_output": self._step_teacher_logits}
        return super()._extract_all_teacher_features(x)

    def get_config(self):
        raise NotImplementedError(
            "save distiller.student (a plain model); the Distiller itself is a training harness"
        )


def teacher_logits(teacher: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The teacher's outputs on `x`, computed once (inference mode) for
    `Distiller(..., cached_teacher_logits=True).fit(x, (y, logits))`.

    Only valid when the training data is not augmented on the fly: each sample must meet
    the logits computed for it.
    """
    return np.asarray(teacher.predict(x, batch_size=batch_size, verbose=0))
