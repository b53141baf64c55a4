"""Resource limits (Docker's --ulimit) set in the container's first process."""

import resource  # imported here, never in the child: after pivot_root the host's modules are out of reach

from berth.core.runtime.errors import StartError

# go-units' names, Linux's RLIMIT_* numbers
NUMBERS = {
    "core": 4, "cpu": 0, "data": 2, "fsize": 1, "locks": 10, "memlock": 8, "msgqueue": 12, "nice": 13,
    "nofile": 7, "nproc": 6, "rss": 5, "rtprio": 14, "rttime": 15, "sigpending": 11, "stack": 3,
}


def apply(rlimits) -> None:
    """setrlimit each (name, soft, hard); -1 is unlimited. Runs in the child, as root."""
    for name, soft, hard in rlimits:
        soft = resource.RLIM_INFINITY if soft < 0 else soft
        hard = resource.RLIM_INFINITY if hard < 0 else hard
        try:
            resource.setrlimit(NUMBERS[name], (soft, hard))
        except (OSError, ValueError) as exc:
            why = "operation not permitted" if isinstance(exc, ValueError) else exc.strerror.lower()
            raise StartError(f"error setting rlimit type {NUMBERS[name]} ({name}): setrlimit: {why}",
                             "rlimits") from None
