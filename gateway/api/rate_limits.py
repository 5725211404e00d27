"""Per-key rate limits: requests and tokens per minute, each a token bucket that refills continuously.

A key with ``requests_per_minute`` may burst that many requests, then one every ``60 / n`` s; a
key with ``tokens_per_minute`` is admitted while its bucket holds tokens, and each completion's
prompt and completion tokens are taken from it when it ends (so one long request may overdraw
it; the next waits until it refills). A refusal is 429 ``rate_limit_exceeded`` with the
``Retry-After`` that would let the request in. Buckets live in memory, per key. This module
knows nothing about routes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.api.auth import Principal
from gateway.errors import LoragError


@dataclass
class Bucket:
    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount`` (0: now)."""
        return max(0.0, (amount - self.level) * 60 / self.capacity)


class RateLimits:
    """The buckets of every key that has limits."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.buckets: dict[tuple[str, str], Bucket] = {}

    def admit(self, principal: Principal) -> None:
        """Take one request from the key's request bucket; 429 if it is empty or its tokens are spent."""
        now = self.clock()
        requests = self._bucket(principal.name, "requests", principal.requests_per_minute, now)
        tokens = self._bucket(principal.name, "tokens", principal.tokens_per_minute, now)
        if tokens is not None and tokens.level < 1:
            raise _limited(principal, "tokens", tokens.wait_for(1))
        if requests is not None:
            if requests.level < 1:
                raise _limited(principal, "requests", requests.wait_for(1))
            requests.level -= 1

    def spend(self, principal: Principal, tokens: int) -> None:
        """Take a finished completion's tokens from the key's token bucket."""
        bucket = self._bucket(principal.name, "tokens", principal.tokens_per_minute, self.clock())
        if bucket is not None:
            bucket.level -= tokens

    def _bucket(self, name: str, kind: str, per_minute: int | None, now: float) -> Bucket | None:
        if per_minute is None:
            return None
        bucket = self.buckets.setdefault((name, kind), Bucket(per_minute, per_minute, now))
        bucket.refill(now)
        return bucket


def _limited(principal: Principal, kind: str, wait_s: float) -> LoragError:
    limit = principal.requests_per_minute if kind == "requests" else principal.tokens_per_minute
    retry = max(1, math.ceil(wait_s))
    return LoragError(
        429, f"this API key may use {limit} {kind} a minute: retry in {retry} s", type="rate_limit_error",
        code="rate_limit_exceeded", headers={"Retry-After": str(retry)},
    )  # fmt: skip
