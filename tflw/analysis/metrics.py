"""Scores that put accuracy against model cost, so two compression runs compare fairly.

```python
information_density(0.9691, 5_562)          # accuracy per parameter
netscore(0.9691, 5_562, 332_736)            # Wong 2018, in dB
```
"""

import math


def information_density(accuracy: float, parameters: int) -> float:
    """Accuracy (a fraction) per parameter (Canziani et al. 2016)."""
    return accuracy / parameters


def netscore(accuracy: float, parameters: int, macs: int) -> float:
    """NetScore (Wong 2018): 20 log10(a^2 / (sqrt(p) sqrt(m))).

    With a the top-1 accuracy in percent, p the parameters in millions and m the
    multiply-accumulates per inference in millions (the paper's alpha=2, beta=gamma=0.5).

    References:
        A. Wong, "NetScore: Towards Universal Metrics for Large-scale Performance
        Analysis of Deep Neural Networks for Practical On-Device Edge Usage", 2018.
    """
    a = 100.0 * accuracy
    return 20.0 * math.log10(a**2 / (math.sqrt(parameters / 1e6) * math.sqrt(macs / 1e6)))
