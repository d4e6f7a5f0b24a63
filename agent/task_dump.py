"""On SIGUSR1, log every Trio task of this process and where each one waits.

Owns: `dump_tasks_on_signal`, a task the daemon runs for the life of the process. `kill
-USR1 <pid>` then writes one log line per task (its name and its await stack, innermost
last) at warning level, so it shows whatever --log-level is: the way to see why an
agent that looks idle is waiting, without stopping it.
"""

from __future__ import annotations

import logging
import signal

import trio

log = logging.getLogger("agent.tasks")


def task_lines() -> list[str]:
    """One line per task in this Trio run: its name and await frames outside Trio itself,
    outermost first."""
    lines: list[str] = []
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        frames = [f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{lineno}:{f.f_code.co_name}"
                  for f, lineno in task.iter_await_frames() if "/trio/" not in f.f_code.co_filename]
        lines.append(f"task={task.name} at={' > '.join(frames) or '-'}")
        for nursery in task.child_nurseries:
            pending.extend(sorted(nursery.child_tasks, key=lambda t: t.name, reverse=True))
    return lines


async def dump_tasks_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGUSR1) as signals:
        async for _ in signals:
            try:
                lines = task_lines()
            except Exception as exc:  # noqa: BLE001 - a debugging aid never stops the agent
                log.warning("event=tasks_dump_failed error=%r", str(exc))
                continue
            for line in lines:
                log.warning("event=task %s", line)
            log.warning("event=tasks_dumped count=%d", len(lines))
