"""Lifeguard local health multiplier ("awareness", Lifeguard §IV-A).

Owns: one integer score in [0, max-1]. Rules: missed acks/nacks raise it, successful
probes lower it; the probe interval and timeout are multiplied by score+1, so a node
that is itself slow (CPU starved, paused, lossy) probes more patiently instead of
falsely suspecting healthy peers. Pure arithmetic, no clock.
"""

from __future__ import annotations


class Awareness:
    def __init__(self, max_multiplier: int) -> None:
        self._max = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        return self._score

    @property
    def multiplier(self) -> int:
        return self._score + 1

    def apply(self, delta: int) -> None:
        self._score = min(self._max - 1, max(0, self._score + delta))

    def scale(self, seconds: float) -> float:
        return seconds * (self._score + 1)
