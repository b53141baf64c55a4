import multiprocessing
import sqlite3

import pytest

from berth.core.plumbing.store import MIGRATIONS, Store


def test_schema_is_versioned(tmp_path):
    store = Store(tmp_path / "db")
    assert store.one("PRAGMA user_version")[0] == len(MIGRATIONS)
    store.close()
    again = Store(tmp_path / "db")  # reopening migrates nothing twice
    assert again.one("PRAGMA user_version")[0] == len(MIGRATIONS)


def test_failed_transaction_changes_nothing(tmp_path):
    store = Store(tmp_path / "db")
    with pytest.raises(RuntimeError):
        with store.transaction() as db:
            db.execute("INSERT INTO meta (key, value) VALUES ('a', 'b')")
            raise RuntimeError
    assert store.one("SELECT * FROM meta") is None


def _claim(path, name, results):
    store = Store(path)
    try:
        with store.transaction() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (name,))
        results.put("won")
    except sqlite3.IntegrityError:
        results.put("lost")


def test_two_processes_one_name_exactly_one_wins(tmp_path):
    Store(tmp_path / "db").close()
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_claim, args=(tmp_path / "db", "name", results)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get() for _ in procs)
    assert outcomes.count("won") == 1 and outcomes.count("lost") == 7
