"""relay.memory reaches what it needs: Arrow's pool and, on glibc, malloc_trim (a canary for both)."""

from __future__ import annotations

import platform

import pyarrow as pa
import pytest

from relay import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_malloc_trim_is_found() -> None:
    assert memory._malloc_trim() is not None


def test_giving_back_keeps_what_is_in_use() -> None:
    kept = pa.array(range(100_000))
    freed = pa.array(range(1_000_000))
    del freed
    memory.give_back()
    assert kept.sum().as_py() == sum(range(100_000)), "what is held stays held"
    assert pa.default_memory_pool().bytes_allocated() >= kept.nbytes
