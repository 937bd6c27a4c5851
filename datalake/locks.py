"""Whether the holder of a lock file still runs: a lock left by a killed process on this host is
taken over, one held on another host is not (its process cannot be seen from here)."""
from __future__ import annotations

import os
import socket
from datetime import datetime, timezone


def holder_record() -> dict:
    """What a lock file says about its holder: this host and process, and since when."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": datetime.now(timezone.utc).isoformat()}


def abandoned(holder: dict) -> bool:
    """True if `holder` (a lock file's record) is a process of this host that no longer runs."""
    try:
        pid = int(holder.get("pid", 0))
    except (TypeError, ValueError):
        return False
    return holder.get("host") == socket.gethostname() and pid > 0 and not process_alive(pid)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
