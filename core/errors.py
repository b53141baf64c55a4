"""One error hierarchy, named for what the caller should do.

The CLI maps each class to a message and an exit code in one place
(`berth.core.cli.base`); everything below the CLI raises these and never
prints. The message is the one line the user sees, so it follows Docker's
wording where Docker has one.
"""


class BerthError(Exception):
    """Root of every error a person can cause or the host can refuse."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ExitCode(BerthError):
    """An error with an exit code of the command's choosing (125 for a failed run)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.exit_code = code


class InvalidArgument(BerthError):
    """Bad input: a flag value, a reference, a name. Docker exits 125."""

    exit_code = 125


class NotFound(BerthError):
    """The named image, container, volume, network or layer does not exist."""


class Conflict(BerthError):
    """Already exists or already taken: a name, a port, an address."""


class FailedPrecondition(BerthError):
    """The object is in the wrong state: running, in use, not running."""


class Unsupported(BerthError):
    """This host or driver cannot do it (missing kernel feature, driver)."""


class Corrupt(BerthError):
    """Data failed verification: a digest mismatch, a broken archive."""


class RegistryError(BerthError):
    """A registry refused, lied or could not be reached."""


class Unauthorized(RegistryError):
    """The registry wants credentials, or refused the ones given."""
