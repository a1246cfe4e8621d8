"""A linear head on cached backbone features, fitted as the convex problem it is.

On fixed features a new last layer is a multinomial logistic regression: a deterministic full-batch
L-BFGS fit (what scikit-learn's LogisticRegression does) reaches its optimum in tens of iterations,
where mini-batch Adam at a fine-tuning learning rate is still far from it after many epochs. The
regularisation is chosen like scikit-learn's C on a validation split: a path of weight decays from
strong to weak, each fit warm-started from the previous one, and the validation error picks one.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

# Weight decay in units of the mean training loss (loss + wd/2 * |W|^2): scikit-learn's C = 1 / (wd * n).
# 1e-1 .. 1e-6 spans C from about 10/n to 10^6/n, which holds the best C of linear probes we measured.
STRONGEST, WEAKEST = 1e-1, 1e-6
SINGLE = 1e-4  # a path of one point: a moderate weight decay
MAX_ITER = 50  # L-BFGS iterations per weight decay; warm starts converge in fewer
CHUNK = 10  # iterations per optimizer call: the loss is reported and cancel checked between calls


def weight_decay_path(count: int) -> list[float]:
    """`count` weight decays from strong to weak, evenly spaced in log scale."""
    if count <= 1:
        return [SINGLE]
    return [float(v) for v in np.geomspace(STRONGEST, WEAKEST, count)]


def fit_head(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, weight_decay: float,
             should_stop: Callable[[], None], on_loss: Callable[[int, float], None],
             max_iter: int = MAX_ITER) -> int:
    """Minimise cross-entropy + weight_decay/2 * |W|^2 (bias not decayed) over all features at once,
    from the head's current weights. `should_stop` raises to cancel; `on_loss(iterations, loss)`
    follows the fit (the training cross-entropy every few iterations). Returns the L-BFGS iterations taken."""
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=CHUNK, history_size=10,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-5, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        should_stop()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(features), labels) + weight_decay / 2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    done = 0
    while done < max_iter:
        optimizer.step(closure)
        taken = optimizer.state[next(iter(optimizer.state))].get("n_iter", 0) - done
        done += taken
        on_loss(done, loss_and_error(head, features, labels)[0])
        if taken < CHUNK:  # converged (gradient or change below tolerance)
            break
    return done


def loss_and_error(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and error rate of the head on these features."""
    with torch.no_grad():
        logits = head(features)
        return (float(nn.functional.cross_entropy(logits, labels)),
                float((logits.argmax(1) != labels).float().mean()))
