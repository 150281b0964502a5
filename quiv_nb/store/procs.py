"""Who wrote a job row: this host, process id and process start time, and whether that process lives.

A job left "scheduled" or "running" by a process that no longer exists was interrupted. A pid alone
is not proof (pids are reused), so each row also carries the process's start time as the kernel
reports it; a live process with that pid but another start time is a different process.
"""

from __future__ import annotations

import os
import socket

__all__ = ["Process", "alive", "this_process"]

Process = tuple[str, int, str]  # (host name, pid, start token)


def _start_token(pid: int) -> str:
    """The start time of process `pid` as an opaque string, "" when this platform cannot tell.

    Linux: field 22 of /proc/PID/stat (clock ticks since boot) plus the boot id, so a reboot that
    reuses pid and tick count is still told apart. Elsewhere psutil when it is installed.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        fields = stat.rsplit(")", 1)[1].split()  # the fields after the "(comm)" name: the 3rd onwards
        if fields[0] in ("Z", "X"):
            return "dead"  # a zombie (killed, not yet reaped) runs no more
        ticks = fields[19]  # the 22nd field: start time
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                boot = f.read().strip()
        except OSError:
            boot = ""
        return f"{boot}:{ticks}"
    except (OSError, IndexError):
        pass
    try:
        import psutil  # optional: macOS, Windows
    except ImportError:
        return ""
    try:
        return f"psutil:{psutil.Process(pid).create_time():.3f}"
    except Exception:  # NoSuchProcess, AccessDenied
        return ""


def this_process() -> Process:
    """(host, pid, start token) of the calling process."""
    pid = os.getpid()
    return socket.gethostname(), pid, _start_token(pid)


def alive(pid: int, token: str) -> bool:
    """Whether process `pid`, started at `token` (see `_start_token`), still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    except OSError:
        return False
    now = _start_token(pid)
    # No start time (recorded or readable now): a live pid is all we can go by.
    return now != "dead" and (not token or not now or now == token)
