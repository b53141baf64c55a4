"""Random identifiers and picks, from os.urandom.

(`secrets` would do, but importing it costs a container start ~5 ms: it
pulls in hmac, base64 and random.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def random_hex(nbytes: int = 32) -> str:
    """`nbytes` random bytes as hex: a 64-character ID by default, as Docker's."""
    return os.urandom(nbytes).hex()


def random_choice(items: Sequence):
    """An unbiased pick from `items` (not empty)."""
    n = len(items)
    limit = (1 << 32) - (1 << 32) % n  # reject the top remainder so every item is equally likely
    while True:
        x = int.from_bytes(os.urandom(4), "little")
        if x < limit:
            return items[x % n]
