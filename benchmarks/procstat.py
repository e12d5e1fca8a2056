"""What a relay process costs, read from ``/proc`` (Linux).

The benchmarks judge a relay by the CPU it burns and the memory it holds, not by
how fast the load generator goes, because the load generator shares the
machine's cores with it.  These are the same figures as ``shared/bench/lib/proc.js``:
CPU is ``utime + stime`` of ``/proc/PID/stat``; peak RSS is ``VmHWM`` of
``/proc/PID/status`` after writing ``5`` to ``/proc/PID/clear_refs``, which resets
the high-water mark to the current RSS so that a measured window starts clean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used since it started."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have spent busy (anything but idle and I/O wait) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(field) for field in fields)
    return (user + nice + system + irq + softirq + steal) / _TICKS


@dataclass(frozen=True, slots=True)
class Memory:
    rss_mb: float
    peak_rss_mb: float


def memory(pid: int) -> Memory:
    """Current RSS and its high-water mark (since start or the last :func:`reset_peak`), in MB (2**20)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return Memory(values.get("VmRSS", 0) / 1024, values.get("VmHWM", 0) / 1024)


def reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS to its current RSS; False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def pid_listening_on(port: int) -> int | None:
    """The PID of the process listening on a TCP port of this machine, or None.

    Finds the listening socket's inode in ``/proc/net/tcp{,6}``, then the process
    holding that inode among the file descriptors this user may read.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None
