"""Memory guardrails: an out-of-memory error halves what the model sees at once, and the run
goes on; where even one image does not fit, one sentence names the setting to lower.

`MemoryGuard` handles the Learner's on_batch_error event: in training the failed batch is
skipped and the following ones go through the model in twice as many parts (gradients summed,
so the steps and the schedule stay the same); in validation and for the sample grid the same
batch is tried again in smaller parts. Learner.rehearse runs one batch of each before the
first step, so a size that cannot fit is found before anything is learnt.
"""
import math

import torch

from .callbacks import Callback
from .errors import ConfigError


class OutOfMemory(ConfigError):
    """Even one image at a time does not fit in the device's memory."""


class MemoryGuard(Callback):
    order = -10  # before any other handler of a failed batch

    def __init__(self, advice: str = "lower 'image_size' or choose a smaller 'arch'"):
        self.advice = advice

    def on_batch_error(self):
        learn = self.learner
        if not isinstance(learn.error, torch.OutOfMemoryError):
            return
        if learn.device.type == "cuda":
            torch.cuda.empty_cache()
        training = learn.stage == "training"
        attr = "chunks" if training else "valid_chunks"
        batch = len(learn.yb) if training else learn.batch_size_now
        parts = getattr(learn, attr)
        if math.ceil(batch / parts) <= 1:
            learn.error = OutOfMemory(f"The {learn.device.type.upper()}'s memory cannot hold even one image at a "
                                      f"time while {learn.stage}; {self.advice}.")
            return
        setattr(learn, attr, parts * 2)
        learn.log(f"out of memory while {learn.stage}: the model now sees batches of {math.ceil(batch / (parts * 2))} "
                  f"({parts * 2} parts per batch of {batch}; the steps and the schedule stay the same)"
                  + ("; this batch is skipped" if training else ""))
        learn.error = None
