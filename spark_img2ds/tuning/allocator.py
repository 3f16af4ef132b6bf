"""Capping glibc's malloc arenas in a Python worker.

glibc gives each new thread that allocates an arena of its own (a free one first) until
there are 8 per core, and memory freed in an arena serves only that arena's next
allocations. A worker's download threads (thread_count, 32-64) each hold decoded images
of a few hundred KB to a few MB, so each arena grows towards its own peak and a worker's
memory creeps up over a long run. Measured on 2 cores at thread_count 64: with glibc's
default a worker's RSS rose from 375 to 520-526 MB over its first 40,000-60,000 images;
with 2 arenas it stayed within 244-292 MB over 40,000 (234-261 with 1, 265-314 with 4),
at the same speed. Capping the arenas is the usual remedy (Hadoop sets
MALLOC_ARENA_MAX=4 for its daemons, HADOOP-7154); a worker runs its threads on about
one core, so 2 arenas leave little lock contention.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

M_ARENA_MAX = -8  # glibc's malloc.h


def user_chose_arenas(environ: Mapping[str, str]) -> bool:
    """Whether the process environment already sets glibc's arena limit (the user's choice wins)."""
    if "MALLOC_ARENA_MAX" in environ:
        return True
    return "glibc.malloc.arena_max" in environ.get("GLIBC_TUNABLES", "")


def cap_malloc_arenas(limit: int, library: str | None = None) -> bool:
    """Allow this process at most limit malloc arenas from now on; True if glibc took the setting.

    Arenas made before the call stay, so call it before the worker's threads start.
    limit 0, a user's own MALLOC_ARENA_MAX or glibc tunable, or a C library without
    mallopt (musl, macOS) leave the allocator as it is. library: where to find mallopt
    (default: the C library the interpreter runs on).
    """
    if limit <= 0 or user_chose_arenas(os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(library).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_ARENA_MAX, limit) == 1
