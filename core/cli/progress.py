"""A transfer's per-layer progress, as Docker draws it (pull, push, and the pull inside run/create).

Click-free: the pull inside `run` uses it without leaving run's fast path."""

from __future__ import annotations

import sys
import threading
import time


class ProgressView:
    """Per-layer progress: redrawn bars on a terminal, one line per step otherwise."""

    QUIET_STEPS = {"Downloading", "Pushing", "Preparing", "Pulling fs layer"}

    def __init__(self, tty: bool, quiet: bool = False, stream=None):
        self.tty = tty
        self.out = stream or sys.stdout
        self.quiet = quiet
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.state: dict[str, tuple[str, int, int]] = {}
        self.started: dict[str, float] = {}
        self.drawn = 0
        self.last_draw = 0.0
        self.header: str | None = None

    def begin(self, ref) -> None:
        """A pull of `ref` starts. Its "TAG: Pulling from REPO" line waits for the registry's first
        answer (a layer's progress, or `end`): an unreachable registry is one error line, as Docker's."""
        self.reset()
        self.header = f"{ref.tag or ref.digest}: Pulling from {ref.repository}"

    def _say_header(self) -> None:
        if self.header is not None and not self.quiet:
            self.out.write(self.header + "\n")
            self.out.flush()
        self.header = None

    def end(self, result) -> None:
        """A pull is done: Docker's Digest and Status lines for its PullResult."""
        with self.lock:
            self._say_header()
            if not self.quiet:
                status = "Image is up to date" if result.up_to_date else "Downloaded newer image"
                self.out.write(f"Digest: {result.digest}\nStatus: {status} for {result.ref.familiar}\n")
                self.out.flush()

    def __call__(self, label: str, status: str, current: int = 0, total: int = 0) -> None:
        if self.quiet:
            return
        with self.lock:
            self._say_header()
            if label not in self.state:
                self.order.append(label)
            previous = self.state.get(label, ("", 0, 0))[0]
            self.state[label] = (status, current, total)
            if status in ("Downloading", "Pushing"):
                self.started.setdefault(label, time.monotonic())
            if self.tty:
                now = time.monotonic()
                if status in ("Downloading", "Pushing") and now - self.last_draw < 0.1:
                    return
                self.last_draw = now
                self._draw()
            elif status != previous and status not in ("Downloading", "Pushing"):
                self.out.write(f"{label}: {status}\n")
                self.out.flush()

    def _line(self, label: str) -> str:
        status, current, total = self.state[label]
        if status not in ("Downloading", "Pushing") or not total:
            return f"{label}: {status}"
        from berth.core.plumbing.units import human_size

        width = 40
        filled = min(width, int(width * current / total))
        bar = "=" * max(0, filled - 1) + (">" if filled < width else "=") + " " * (width - filled)
        elapsed = max(time.monotonic() - self.started.get(label, time.monotonic()), 1e-3)
        speed = human_size(current / elapsed)
        return f"{label}: {status} [{bar}] {human_size(current)}/{human_size(total)} {speed}/s"

    def _draw(self) -> None:
        out = self.out
        if self.drawn:
            out.write(f"\x1b[{self.drawn}A")
        for label in self.order:
            out.write("\x1b[2K" + self._line(label) + "\n")
        self.drawn = len(self.order)
        out.flush()

    def reset(self) -> None:
        """A new image starts: forget the lines already drawn."""
        with self.lock:
            self.order.clear()
            self.state.clear()
            self.drawn = 0
