"""Reading container logs: an async iterator of lines (tail N, follow).

Owns: the log access the CLI uses. Rules: lines come without their newline; `follow`
ends when the container instance stops (a restarted container is a new instance).
PodRuntime.logs(uid, container, tail=, follow=) is the entry point; this module holds
the helper that collects lines for callers that want a list.
"""

from __future__ import annotations

from typing import AsyncIterator


async def collect(lines: AsyncIterator[str], *, limit: int | None = None) -> list[str]:
    """All lines of a (non-following) log iterator, at most `limit`."""
    out: list[str] = []
    async for line in lines:
        out.append(line)
        if limit is not None and len(out) >= limit:
            break
    return out
