"""Run fleet instances as spawned child processes, each with its own event loop, bounded."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from typing import Any

SPAWN = multiprocessing.get_context("spawn")
WAIT = 30.0
"""The longest any test waits for one child's report: a hang fails, it never blocks CI."""

Job = tuple[Callable[..., None], tuple[Any, ...]]


@contextmanager
def children(jobs: list[Job]) -> Iterator[tuple[list[SpawnProcess], Queue[Any]]]:
    """Start one process per job (its args, then the shared results queue); stop them by PID."""
    results: Queue[Any] = SPAWN.Queue()
    started = [SPAWN.Process(target=target, args=(*args, results)) for target, args in jobs]
    for process in started:
        process.start()
    try:
        yield started, results
    finally:
        for process in started:
            process.join(timeout=WAIT)
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.join(timeout=5)
        results.close()
        results.join_thread()


def collect(results: Queue[Any], count: int) -> list[Any]:
    return [results.get(timeout=WAIT) for _ in range(count)]
