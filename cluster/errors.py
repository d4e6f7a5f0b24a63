"""The one exception the cluster tool raises: a message a person can act on.

Every failure the tool can explain (not root, a missing tool, an unknown node, a node
already down, a name in use) is a ClusterError whose text says what to do; the CLI prints
it and exits 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ClusterError(Exception):
    """A failure with a message meant for the person running the tool."""
