"""Range statistics over the global batch when training runs on several replicas.

Under `tf.distribute`, each replica sees its own slice of the batch: left alone, every
replica's EMA range drifts apart, and which one gets saved is an accident. Reducing the
batch min/max across replicas first keeps every copy identical and equal to what one
device would compute on the whole batch. (JAX's sharded arrays are global already.)

```python
batch_min, batch_max = global_min_max(ops.min(x), ops.max(x))
```
"""

import keras


def global_min_max(batch_min, batch_max) -> tuple:
    """(min over replicas of `batch_min`, max over replicas of `batch_max`)."""
    if keras.backend.backend() != "tensorflow":
        return batch_min, batch_max
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return batch_min, batch_max
    # ReduceOp has no MIN/MAX: gather every replica's pair and reduce it here.
    gathered = context.all_gather(tf.stack([batch_min, -batch_max])[None], axis=0)
    low = tf.reduce_min(gathered, axis=0)
    return low[0], -low[1]
