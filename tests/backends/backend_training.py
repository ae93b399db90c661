"""Run as `KERAS_BACKEND=jax python -m tests.backends.backend_training OUT` (or with
KERAS_BACKEND=torch): trains a QAT model, a channel-pruned model and a distilled QAT student
on that backend, checks what only the training backend can see, and saves each as .keras
(plus facts as JSON) for the TensorFlow side."""

import json
import sys
from pathlib import Path

import keras
import numpy as np

import tflw
from tflw.data import load_mnist_subset
from tflw.demo import build_demo_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def main(out: Path) -> None:
    assert keras.backend.backend() in ("jax", "torch"), keras.backend.backend()
    (x, y), _ = load_mnist_subset()
    x, y = x[:512], y[:512]
    keras.utils.set_random_seed(0)
    teacher = build_demo_model(width=8)
    teacher.compile("adam", LOSS)
    teacher.fit(x, y, epochs=1, verbose=0)

    qat = tflw.quantize_model(teacher, calibration_data=x[:64])
    ranges_before = [float(v.numpy()) for v in qat.weights if v.path.endswith("range_max")]
    qat.compile(keras.optimizers.Adam(1e-3), LOSS)
    qat.fit(x, y, epochs=1, verbose=0)
    ranges_after = [float(v.numpy()) for v in qat.weights if v.path.endswith("range_max")]
    qat.save(out / "qat.keras")
    np.save(out / "qat_predictions.npy", qat.predict(x[:64], verbose=0))

    # The GPU benchmark's W2/A2 path; and an all-zero tensor, whose [0, 0] range JAX's
    # and PyTorch's fake quantization turned into NaN
    low_bit = tflw.quantize_model(teacher, calibration_data=x[:64], weight_bits=2,
                                  method="apot+ewgs", activation_bits=2)
    low_bit.compile(keras.optimizers.Adam(1e-3), LOSS)
    low_bit_losses = low_bit.fit(x, y, epochs=1, verbose=0).history["loss"]
    low_bit.save(out / "w2a2.keras")
    np.save(out / "w2a2_predictions.npy", low_bit.predict(x[:64], verbose=0))
    dead = tflw.quantization.FakeQuant()(np.zeros((4, 3), "float32"), training=True)

    pruned = tflw.prune_model(teacher, tflw.ConstantSparsity(0.5), structure="channels")
    pruned.compile("adam", LOSS)
    pruned.fit(x, y, epochs=1, verbose=0, callbacks=[tflw.UpdatePruningStep()])
    pruned.save(out / "pruned.keras")

    # tflw.ptq's reconstruction on the backend, unlabeled: AdaRound per layer, BRECQ per block
    nearest = tflw.ptq(teacher, x[:128], weight_bits=4, rounding="nearest").get_weights()
    rounded_away = {}
    for rounding in ("adaround", "brecq"):
        quantized = tflw.ptq(teacher, x[:128], weight_bits=4, rounding=rounding, iterations=20)
        quantized.save(out / f"ptq_{rounding}.keras")
        np.save(out / f"ptq_{rounding}_predictions.npy", quantized.predict(x[:64], verbose=0))
        rounded_away[rounding] = sum(int(np.sum(a != b)) for a, b in
                                     zip(quantized.get_weights(), nearest))

    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student = tflw.quantize_model(build_demo_model(width=4), calibration_data=x[:64])
    distiller = tflw.Distiller(student, teacher, temperature=2.0, alpha=0.5)
    distiller.compile("adam", LOSS)
    distiller.fit(x, y, epochs=1, verbose=0)
    student.save(out / "student.keras")
    (out / "facts.json").write_text(json.dumps({
        "ranges_moved": sum(a != b for a, b in zip(ranges_before, ranges_after)),
        "ranges": len(ranges_after),
        "teacher_unchanged": all(np.array_equal(a, b) for a, b in
                                 zip(teacher_weights, teacher.get_weights())),
        "stripped_parameters": tflw.strip_pruning(pruned).count_params(),
        "dense_parameters": teacher.count_params(),
        "low_bit_losses": low_bit_losses,
        "dead_tensor_output": keras.ops.convert_to_numpy(dead).tolist(),
        "ptq_weights_rounded_away_from_nearest": rounded_away,
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
