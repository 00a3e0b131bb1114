"""Retry delays of failed passes: exponential backoff with full jitter, per customization.

The n-th failure in a row of one customization waits a random time in `[0, base * 2**n)` (full
jitter: customizations failing together spread out instead of retrying in lockstep), at least
the server's `Retry-After` and at least `at_least` (e.g. a minute for a failure a person must
fix), never more than `cap`. A success resets the count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable

__all__ = ["Backoff"]


class Backoff:
    """Per-key failure counts and the delay before each key's next try."""

    def __init__(
        self, *, base: float, cap: float, random: Callable[[], float] = random.random
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"Backoff(base={base}, cap={cap}): need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._random = random
        self._failures: dict[Hashable, int] = {}

    def failed(
        self, key: Hashable, *, retry_after: float | None = None, at_least: float = 0.0
    ) -> float:
        """Counts a failure of `key`; answers the seconds to wait before its next try."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # The exponent is bounded so that a long outage never overflows a float.
        ceiling = min(self.cap, self.base * 2 ** min(failures, 62))
        delay: float = max(ceiling * self._random(), at_least, retry_after or 0.0)
        return min(delay, self.cap)

    def succeeded(self, key: Hashable) -> None:
        """`key` passed: its next failure starts from `base` again."""
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        """How many times in a row `key` has failed."""
        return self._failures.get(key, 0)
