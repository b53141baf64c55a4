"""The none log driver: output is discarded; `berth logs` has nothing to read."""

from __future__ import annotations

from collections.abc import Mapping

from berth.core.drivers import LogDriver, LogEntry
from berth.core.errors import InvalidArgument


class NoneLogDriver(LogDriver):
    """Discards every line (Docker's `--log-driver none`)."""

    name = "none"
    readable = False

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        for key in options:
            raise InvalidArgument(f"unknown log opt '{key}' for none log driver")

    def write(self, entry: LogEntry) -> None:
        pass

    def handoff(self) -> dict:
        return {}  # the monitor's steady state discards the output too
