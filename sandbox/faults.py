"""Fault injection: which /api call goes wrong, and how.

One seedable RNG draws once per call; the rates of a ``FaultConfig`` are cut from that one
draw, so they are exclusive and their shares are exact in the long run. A "429 burst" is a
counter, not a rate: the next N calls of the organisation (or of anyone, for the global
burst) get 429. Settings are per organisation when set so, else global; ``/_admin/faults``
changes them at run time.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sandbox.config import FaultConfig, faults_from_mapping

FaultKind = Literal["none", "burst_429", "fail", "slow", "drop", "stall"]


@dataclass(frozen=True)
class FaultDecision:
    kind: FaultKind
    seconds: float = 0.0
    # For drops: the request is applied before the connection is cut.
    after_apply: bool = False
    retry_after: int = 1


NO_FAULT = FaultDecision("none")


class FaultInjector:
    """Decides the fault for each call. Thread-safe."""

    def __init__(
        self, base: FaultConfig, per_org: dict[str, FaultConfig], seed: int | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._initial = (base, dict(per_org), seed)
        self.reset()

    def reset(self) -> None:
        """Back to the settings the server started with (and the same RNG sequence)."""
        base, per_org, seed = self._initial
        with self._lock:
            self.base = base
            self.per_org = dict(per_org)
            self._rng = random.Random(seed)
            self._burst: Counter[str | None] = Counter()
            if base.burst_429:
                self._burst[None] = base.burst_429
            for org, faults in per_org.items():
                if faults.burst_429:
                    self._burst[org] = faults.burst_429
            self.injected: Counter[tuple[str, str]] = Counter()

    def settings(self, org: str) -> FaultConfig:
        return self.per_org.get(org, self.base)

    def update(self, changes: dict[str, Any], org: str | None = None, clear: bool = False) -> None:
        """Change rates (keys of ``FaultConfig``) globally or for one organisation."""
        with self._lock:
            if org is None:
                current = FaultConfig() if clear else self.base
                self.base = faults_from_mapping(changes, current)
                settings = self.base
            else:
                if clear:
                    self.per_org.pop(org, None)
                current = self.per_org.get(org, self.base)
                settings = faults_from_mapping(changes, current)
                if changes or not clear:
                    self.per_org[org] = settings
            if "burst_429" in changes:
                self._burst[org] = settings.burst_429

    def decide(self, org: str) -> FaultDecision:
        """The fault for one call of ``org`` (most calls: ``NO_FAULT``)."""
        with self._lock:
            faults = self.per_org.get(org, self.base)
            for key in (org, None):
                if self._burst[key] > 0:
                    self._burst[key] -= 1
                    self.injected[(org, "burst_429")] += 1
                    return FaultDecision("burst_429", retry_after=faults.burst_retry_after)
            if not (
                faults.fail_rate
                or faults.drop_rate
                or faults.timeout_after_apply_rate
                or faults.slow_rate
            ):
                return NO_FAULT
            draw = self._rng.random()
            edge = faults.fail_rate
            if draw < edge:
                self.injected[(org, "fail")] += 1
                return FaultDecision("fail")
            edge += faults.drop_rate
            if draw < edge:
                after = self._rng.random() < faults.drop_after_apply_share
                self.injected[(org, "drop_after_apply" if after else "drop")] += 1
                return FaultDecision("drop", after_apply=after)
            edge += faults.timeout_after_apply_rate
            if draw < edge:
                self.injected[(org, "timeout_after_apply")] += 1
                return FaultDecision("stall", seconds=faults.stall_seconds)
            edge += faults.slow_rate
            if draw < edge:
                self.injected[(org, "slow")] += 1
                return FaultDecision("slow", seconds=faults.slow_seconds)
            return NO_FAULT

    def drop_webhook(self, org: str) -> bool:
        """Whether to drop one webhook delivery of ``org``."""
        with self._lock:
            rate = self.per_org.get(org, self.base).webhook_drop_rate
            if rate and self._rng.random() < rate:
                self.injected[(org, "webhook_dropped")] += 1
                return True
            return False

    def injected_for(self, org: str) -> dict[str, int]:
        with self._lock:
            return {kind: n for (o, kind), n in self.injected.items() if o == org}

    def snapshot(self) -> dict[str, Any]:
        """Current settings and pending bursts, for ``GET /_admin/faults``."""
        with self._lock:
            return {
                "global": asdict(self.base),
                "orgs": {org: asdict(f) for org, f in self.per_org.items()},
                "pending_burst_429": {k or "*": v for k, v in self._burst.items() if v},
            }
