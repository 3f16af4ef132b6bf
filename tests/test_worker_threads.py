"""Starting a task's download threads before it hands out work."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from spark_img2ds.worker import start_threads


def test_all_threads_are_running_before_work_is_given():
    with ThreadPoolExecutor(max_workers=8) as pool:
        start_threads(pool, 8)
        assert len(pool._threads) == 8  # noqa: SLF001  (the pool's own record of its threads)
        assert sum(t.name.startswith("ThreadPoolExecutor") for t in threading.enumerate()) >= 8
        assert pool.submit(lambda: 42).result(5) == 42


def test_a_pool_that_cannot_start_them_all_is_left_working():
    """More threads asked for than the pool may have: the gate gives up, nothing hangs or raises."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        start_threads(pool, 3, timeout=0.5)
        assert pool.submit(lambda: "still works").result(5) == "still works"
