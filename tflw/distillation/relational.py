"""Attention transfer and similarity-preserving distillation: feature losses that need no
adapter, since they compare maps that do not depend on the channel count.

- Attention transfer (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR
  2017): each feature map (N, H, W, C) becomes a spatial attention map, the mean over
  channels of its squares, flattened and L2-normalized per sample; the loss is the mean
  squared difference of the student's and the teacher's maps (the authors' `at_loss`).
  Student and teacher features need the same H x W.
- Similarity-preserving distillation (Tung & Mori, ICCV 2019): each feature, flattened per
  sample, gives the batch's N x N similarity matrix G = F F^T, each row L2-normalized; the
  loss is ||G_s - G_t||_F^2 / N^2. Any shapes.

```python
AttentionTransfer("block2_relu", "stage2_relu").compute_loss(teacher_feature, student_feature)
```
"""

import keras
from keras.distillation import FeatureDistillation

ops = keras.ops


def attention_map(feature):
    """(N, H * W): the mean over channels of the squared feature, L2-normalized per sample."""
    energy = ops.mean(ops.square(feature), axis=-1)
    flat = ops.reshape(energy, (ops.shape(energy)[0], -1))
    return flat / ops.maximum(ops.norm(flat, axis=1, keepdims=True), 1e-12)


def similarity_matrix(feature):
    """(N, N): the batch's feature inner products, each row L2-normalized."""
    flat = ops.reshape(feature, (ops.shape(feature)[0], -1))
    gram = ops.matmul(flat, ops.transpose(flat))
    return gram / ops.maximum(ops.norm(gram, axis=1, keepdims=True), 1e-12)


class _MapDistillation(FeatureDistillation):
    """A feature loss between maps of the two features, which may differ in channels."""

    def __init__(self, student_layer_name: str, teacher_layer_name: str):
        super().__init__(loss="mse", teacher_layer_name=teacher_layer_name,
                         student_layer_name=student_layer_name)

    def validate_model_compatibility(self, teacher, student):
        return None

    def validate_outputs(self, teacher_outputs, student_outputs):
        return None


class AttentionTransfer(_MapDistillation):
    """Attention transfer between a student and a teacher feature of the same H x W."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        difference = attention_map(student_outputs) - attention_map(teacher_outputs)
        return ops.mean(ops.square(difference))


class SimilarityPreserving(_MapDistillation):
    """Similarity-preserving distillation between a student and a teacher feature."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        difference = similarity_matrix(student_outputs) - similarity_matrix(teacher_outputs)
        batch = ops.cast(ops.shape(student_outputs)[0], difference.dtype)
        return ops.sum(ops.square(difference)) / (batch * batch)
