"""A run's time, measured before it starts: estimates, and epochs from a time budget.

fit() rehearses a few batches on the run's own device (Learner.rehearse: loading, augmenting,
forward, backward and an optimiser step, and a validation batch) and turns them into seconds
per epoch. With `budget_s` set, the epochs are chosen so that setup plus training fits in it.
"""
import math

MAX_BUDGET_EPOCHS = 60   # a budget on a fast machine should not turn into hours of tiny epochs
LR_FINDER_BATCHES = 100  # Learner.lr_find's sweep, at most


def plan_epochs(budget_s: float, setup_s: float, epoch_s: float, max_epochs: int = MAX_BUDGET_EPOCHS) -> int:
    """As many whole epochs as fit in what the budget leaves after setup; at least one."""
    left = budget_s - setup_s
    return max(1, min(max_epochs, math.floor(left / max(epoch_s, 1e-6))))


def estimate(setup_s: float, epoch_s: float, epochs: int, train_batch_s: float, lr_finder: bool) -> dict:
    """Seconds from Start to the end of the run, and its parts (rounded for a record)."""
    finder_s = LR_FINDER_BATCHES * train_batch_s if lr_finder else 0.0
    total = setup_s + finder_s + epochs * epoch_s
    return {"setup_s": round(setup_s, 2), "epoch_s": round(epoch_s, 2), "epochs": epochs,
            "lr_finder_s": round(finder_s, 2), "total_s": round(total, 1)}


def clock(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 60}:{seconds % 60:02d}"
