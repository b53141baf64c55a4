"""What every command line shares, with or without click: the global flags,
the Engine they configure, and the one place where errors become a line on
stderr and Docker's exit code."""

from __future__ import annotations

import os
import sys

from berth.core.cli.flags import Flag
from berth.core.errors import BerthError

GLOBAL_FLAGS = [
    Flag("--root", metavar="DIR", help="Persistent data directory (default /var/lib/berth)."),
    Flag("--runroot", metavar="DIR", help="Runtime state directory (default /run/berth)."),
    Flag("-s", "--storage-driver", metavar="NAME", help="Storage driver (overlay2, vfs, btrfs ...)."),
    Flag("-l", "--log-level", metavar="LEVEL", help="debug, info, warning or error."),
    Flag("--log-format", choices=("console", "json"), help="Format of berth's own logs."),
]


def overrides(values: dict) -> dict:
    """The configuration layer the global flags make (config.load's `overrides`)."""
    layer: dict = {}
    engine = {key: values[key] for key in ("root", "runroot", "log_level", "log_format") if values.get(key)}
    if engine:
        layer["engine"] = engine
    if values.get("storage_driver"):
        layer["storage"] = {"driver": values["storage_driver"]}
    return layer


def make_engine(layer: dict | None):
    """The Engine for this invocation: configuration files, then the flags."""
    from berth.core import config
    from berth.core.engine import Engine
    from berth.core.plumbing import log

    cfg = config.load(layer)
    log.setup(cfg.get("engine.log_level"), cfg.get("engine.log_format"))
    return Engine(cfg)


def reported(command, *args, **kwargs) -> int:
    """Run `command`; its return value is the exit code. A BerthError, a
    closed pipe, ctrl-c or a bug each become one line on stderr and
    Docker's exit code."""
    try:
        rv = command(*args, **kwargs)
    except BerthError as exc:
        if exc.message:
            print(f"Error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        sys.stderr.close()
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line for the user, the trace on request
        if os.environ.get("BERTH_DEBUG"):
            raise
        known = _host_failure(exc)
        if known:
            print(f"Error: {known}", file=sys.stderr)
            return 1
        print(f"Error: internal error: {type(exc).__name__}: {exc} (set BERTH_DEBUG=1 for the trace)",
              file=sys.stderr)
        return 125
    return rv if isinstance(rv, int) else 0


def _host_failure(exc: Exception) -> str | None:
    """One line for what the host refused, wherever it surfaced: a full disk, a database
    SQLite cannot use. None for anything else (a bug)."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f": {exc.filename}" if exc.filename else ""
        return f"no space left on device{where}"
    sqlite3 = sys.modules.get("sqlite3")  # loaded only where a store was opened
    if sqlite3 is not None and isinstance(exc, sqlite3.DatabaseError):
        from berth.core.plumbing.store import OPENED, damaged_message

        return damaged_message(OPENED[-1] if OPENED else "berth.db", exc) if not isinstance(exc, sqlite3.OperationalError) or \
            "malformed" in str(exc) or "not a database" in str(exc) else f"berth's database: {exc}"
    return None
