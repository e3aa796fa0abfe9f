"""Run calls at the same moment on real, separate database connections (PostgreSQL tests)."""

import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections


def run_at_once(calls: Iterable[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Start every call in its own thread behind one barrier; return (results, exceptions raised).

    Each thread closes its connections when done, so the test database can be dropped.
    """
    calls = list(calls)
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    raised: list[BaseException] = []
    lock = threading.Lock()

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            result = call()
            with lock:
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - the test decides what an exception means
            with lock:
                raised.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, raised
