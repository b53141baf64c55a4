"""structlog for berth's own diagnostics (console or JSON, on stderr).

structlog costs ~50 ms to import, so nothing imports it until a message
passes the level filter: at the default level (warning) a quiet command
never pays for it.
"""

from __future__ import annotations

import sys

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_level = LEVELS["warning"]
_format = "console"
_configured = False


def setup(level: str = "warning", fmt: str = "console") -> None:
    global _level, _format, _configured
    if level not in LEVELS:
        from berth.core.errors import InvalidArgument

        raise InvalidArgument(f'invalid log level "{level}" (one of: {", ".join(LEVELS)})')
    _level, _format, _configured = LEVELS[level], fmt, False


def _configure() -> None:
    global _configured
    import structlog

    renderer = (
        structlog.processors.JSONRenderer()
        if _format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configured = True


class Logger:
    """A structlog-shaped logger that imports structlog only when it must."""

    def __init__(self, name: str, **bound):
        self.name = name
        self.bound = bound

    def bind(self, **kw) -> "Logger":
        return Logger(self.name, **{**self.bound, **kw})

    def _log(self, level: str, event: str, **kw) -> None:
        if LEVELS[level] < _level:
            return
        if not _configured:
            _configure()
        import structlog

        # bind, not get_logger(logger=...): that keyword is get_logger's own argument
        getattr(structlog.get_logger().bind(logger=self.name, **self.bound), level)(event, **kw)

    def debug(self, event: str, **kw) -> None:
        self._log("debug", event, **kw)

    def info(self, event: str, **kw) -> None:
        self._log("info", event, **kw)

    def warning(self, event: str, **kw) -> None:
        self._log("warning", event, **kw)

    def error(self, event: str, **kw) -> None:
        self._log("error", event, **kw)


def get_logger(name: str = "berth", **bound) -> Logger:
    return Logger(name, **bound)
