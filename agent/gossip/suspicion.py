"""One suspicion timer with Lifeguard's confirmations (Lifeguard §IV-B).

Owns: the start time, the distinct members that confirmed the suspicion, and the
deadline. Rules: the first suspector does not count as a confirmation; each further
distinct suspector shrinks the timeout logarithmically from max toward min, reached
after `needed` confirmations; the deadline never moves before `start + min`. Pure.
"""

from __future__ import annotations

from .config import GossipConfig, suspicion_timeout_s


class Suspicion:
    def __init__(self, config: GossipConfig, start_s: float, first_by: str, needed: int) -> None:
        self._config = config
        self.start_s = start_s
        self.needed = max(0, needed)
        self._suspectors: set[str] = {first_by}
        self.deadline_s = start_s + suspicion_timeout_s(config, 0, self.needed)
        self.nudge_at_s = start_s + config.suspicion_min_s / 2

    def nudged(self) -> None:
        """Schedule the next reminder to the suspect (see GossipCore._nudge)."""
        self.nudge_at_s += self._config.suspicion_min_s / 2

    @property
    def confirmations(self) -> int:
        return len(self._suspectors) - 1

    def confirm(self, by: str) -> bool:
        """Record `by` as suspecting too; True if it is new (and so worth re-gossiping)."""
        if by in self._suspectors:
            return False
        self._suspectors.add(by)
        self.deadline_s = self.start_s + suspicion_timeout_s(self._config, self.confirmations, self.needed)
        return True
