"""Errors raised by the runtime when a container process cannot start.

start() and exec_process() raise these synchronously: the child reports what
failed through a close-on-exec pipe, so a failure never looks like a hang or
a silent exit. The CLI maps exit_code the way Docker does.
"""

from berth.core.errors import BerthError


class StartError(BerthError):
    """The container process could not be set up (a mount, the user, cwd).

    `step` names what failed, e.g. "mount /data" or "chdir". Docker exits 125.
    """

    exit_code = 125

    def __init__(self, message: str, step: str = ""):
        super().__init__(message)
        self.step = step


class CommandNotFound(StartError):
    """The command does not exist in the container. Docker exits 127."""

    exit_code = 127


class CommandNotExecutable(StartError):
    """The command exists but cannot be executed. Docker exits 126."""

    exit_code = 126
