"""`HintDistillation`: FitNets feature hints with an adapter when shapes differ.

Keras's `FeatureDistillation` compares a student and a teacher feature map of the same
shape. An MCU student is usually narrower than its teacher, so FitNets put a trainable
regressor on the student's feature: here a 1x1 convolution (or a Dense for vectors) to the
teacher's channel count. The adapter trains with the student and is dropped afterwards.

References:
    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
"""

from typing import Optional

import keras
from keras.distillation import FeatureDistillation


class HintDistillation(FeatureDistillation):
    """Mean squared error between a teacher feature and the adapted student feature.

    Args:
        student_layer_name: student layer whose output is the hint's input.
        teacher_layer_name: teacher layer whose output is the target.
        adapter: layer mapping the student feature to the teacher's shape, or None when
            the shapes already match.
    """

    def __init__(self, student_layer_name: str, teacher_layer_name: str,
                 adapter: Optional[keras.layers.Layer] = None):
        super().__init__(loss="mse", teacher_layer_name=teacher_layer_name,
                         student_layer_name=student_layer_name)
        self.adapter = adapter

    def validate_model_compatibility(self, teacher, student):
        # Shapes are reconciled by the adapter; `hint_adapter` checked the spatial sizes.
        return None

    def validate_outputs(self, teacher_outputs, student_outputs):
        return None

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        adapted = self.adapter(student_outputs) if self.adapter is not None else student_outputs
        return keras.ops.mean(keras.ops.square(teacher_outputs - adapted))


def check_same_size(student: keras.Model, student_layer: str, teacher: keras.Model,
                    teacher_layer: str) -> tuple:
    """The two features' shapes; ValueError naming both layers where they differ in
    anything but their channel count."""
    student_shape = tuple(student.get_layer(student_layer).output.shape)
    teacher_shape = tuple(teacher.get_layer(teacher_layer).output.shape)
    if student_shape[:-1] != teacher_shape[:-1]:
        raise ValueError(
            f"'{student_layer}' -> '{teacher_layer}': student feature {student_shape} and "
            f"teacher feature {teacher_shape} differ in more than their channels; pick layers "
            "with the same spatial size."
        )
    return student_shape, teacher_shape


def hint_adapter(student: keras.Model, student_layer: str, teacher: keras.Model,
                 teacher_layer: str) -> Optional[keras.layers.Layer]:
    """A 1x1 projection from the student feature's channels to the teacher's, or None.

    Raises:
        ValueError: the two features differ in anything but their channel count.
    """
    student_shape, teacher_shape = check_same_size(student, student_layer, teacher,
                                                   teacher_layer)
    if student_shape == teacher_shape:
        return None
    channels = teacher_shape[-1]
    name = f"hint_adapter_{student_layer}"
    if len(student_shape) == 4:
        return keras.layers.Conv2D(channels, 1, use_bias=False, name=name)
    return keras.layers.Dense(channels, use_bias=False, name=name)
