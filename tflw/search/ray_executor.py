"""`RayExecutor`: fit_board's candidates as Ray tasks, on as many machines as the cluster has.

```python
import ray
ray.init()                      # or ray.init(address="auto") on a cluster's head node
fit = tflw.fit_board(model, "nano33ble", train, val, executor=RayExecutor(), parallel=4)
```

Ray is not a tflw dependency (`pip install ray`); it is imported on first use. Each task
asks Ray for `num_cpus` CPUs, so Ray runs as many candidates at once as the cluster has
room for; `fit_board`'s `out_dir` must be a folder every node can write (NFS, a shared
volume).
"""

from concurrent.futures import Executor, Future

from tflw.errors import TflwError


class RayExecutor(Executor):
    """A `concurrent.futures.Executor` whose calls run as Ray tasks.

    Args:
        num_cpus: CPUs Ray reserves for each task.
    """

    def __init__(self, num_cpus: float = 1.0):
        try:
            import ray
        except ImportError as error:
            raise TflwError("RayExecutor needs Ray: pip install ray, then ray.init()") from error
        self._ray = ray
        self.num_cpus = num_cpus

    def submit(self, fn, /, *args, **kwargs) -> Future:
        task = self._ray.remote(num_cpus=self.num_cpus)(fn)
        return task.remote(*args, **kwargs).future()
