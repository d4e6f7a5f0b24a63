"""The SIGUSR1 task dump: every task, with where it waits, and the agent keeps running."""

import logging
import os
import signal

import trio
import trio.testing

from agent.task_dump import dump_tasks_on_signal, task_lines


async def waits_on_an_event(event: trio.Event) -> None:
    await event.wait()


async def test_each_task_is_listed_with_the_function_it_waits_in():
    event = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waits_on_an_event, event, name="the-waiter")
        await trio.testing.wait_all_tasks_blocked()
        lines = task_lines()
        event.set()
    [line] = [line for line in lines if "task=the-waiter" in line]
    assert "waits_on_an_event" in line
    assert "/trio/" not in line and "_run.py" not in line


async def test_sigusr1_logs_the_tasks_and_the_dump_task_goes_on(caplog):
    caplog.set_level(logging.WARNING, logger="agent.tasks")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dump_tasks_on_signal)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGUSR1)
            with trio.fail_after(5):
                while sum("event=tasks_dumped" in r.getMessage() for r in caplog.records) < _ + 1:
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert any("dump_tasks_on_signal" in r.getMessage() for r in caplog.records)
