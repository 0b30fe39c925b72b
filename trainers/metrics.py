"""Metrics accumulated over a validation pass, one object per metric."""
import torch


class Metric:
    name = "metric"
    higher_is_better = True

    def reset(self):
        self.total, self.count = 0.0, 0

    def accumulate(self, pred: torch.Tensor, target: torch.Tensor):
        raise NotImplementedError

    @property
    def value(self) -> float:
        return self.total / max(self.count, 1)


class Accuracy(Metric):
    name = "accuracy"

    def accumulate(self, pred, target):
        self.total += (pred.argmax(1) == target).sum().item()
        self.count += target.numel()


class ErrorRate(Accuracy):
    name = "error_rate"
    higher_is_better = False

    @property
    def value(self):
        return 1.0 - super().value
