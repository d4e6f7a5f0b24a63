"""The base exception of the cluster-state package.

Owns: StateError, the one exception type every error raised by agent.state derives
from, so a caller can catch "anything wrong with state input" in one place. Rules: the
subclasses (QuantityError, ManifestError, ...) also derive from a builtin such as
ValueError where that is what they mean.
"""

from __future__ import annotations


class StateError(Exception):
    """Something about cluster-state input or objects is wrong."""
