"""core/plumbing/atomic.py (whole-file replacement) and core/plumbing/ids.py (random IDs)."""

from __future__ import annotations

import os
import threading

from berth.core.plumbing import atomic
from berth.core.plumbing.ids import random_choice, random_hex


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path):
    path = tmp_path / "marker"
    atomic.write_text(path, "1234 5678")
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            atomic.write_text(path, "1234 5678")

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen = {path.read_text() for _ in range(2000)}
    finally:
        stop.set()
        t.join()
    assert seen == {"1234 5678"}
    assert os.listdir(tmp_path) == ["marker"]  # no temporary file left


def test_write_text_sets_the_mode(tmp_path):
    atomic.write_text(tmp_path / "hosts", "x", 0o644)
    assert (tmp_path / "hosts").stat().st_mode & 0o777 == 0o644


def test_ids_are_hex_of_the_asked_length_and_differ():
    ids = {random_hex() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 64 and int(i, 16) >= 0 for i in ids)
    assert len(random_hex(4)) == 8


def test_random_choice_reaches_every_item():
    items = "abc"
    picks = [random_choice(items) for _ in range(300)]
    assert set(picks) == set(items)
