"""Exponential backoff with jitter, reset only by proven health.

A retry loop calls :meth:`Backoff.failed` for the delay before its next attempt and
:meth:`Backoff.succeeded` once the thing it retries has *proved* healthy, not merely
started: a watch stream that is created and then fails at once must not retry at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 10.0
    jitter: float = 0.2
    attempt: int = 0

    def failed(self) -> float:
        """Count a failure; return how long to wait before the next attempt."""
        self.attempt += 1
        delay: float = min(self.maximum, self.initial * 2.0 ** min(self.attempt - 1, 30))
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)

    def succeeded(self) -> None:
        """The retried thing proved healthy: the next failure waits the initial delay."""
        self.attempt = 0
