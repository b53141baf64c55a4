"""`berth system check [--repair]` (issue #11), and the leftovers it is about:
layers a killed pull leaves, lock files that piled up."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import time

from test_hostile_servers import HostileServer, serving

from berth.testing.registries import make_image


def check(berth, *flags):
    return berth("system", "check", *flags, timeout=120)


def test_a_clean_store_checks_clean(berth):
    berth.image
    berth("run", "--rm", "--network", "none", berth.image, "true", check=True)
    proc = check(berth)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc


def test_each_inconsistency_is_reported_then_repaired(berth):
    berth.image
    berth("create", "--name", "kept", "--network", "none", berth.image, "true", check=True)
    cid = berth("create", "--name", "ghost", "--network", "none", berth.image, "true", check=True).stdout.strip()
    home = berth.root / "overlay2"
    db = sqlite3.connect(berth.root / "berth.db")
    # a layer directory without a row (as a killed pull left them before)
    stray = "ab" * 32
    (home / stray / "diff").mkdir(parents=True)
    # a layer row without its directory
    cache_id = db.execute("SELECT cache_id FROM layers").fetchone()[0]
    subprocess.run(["rm", "-rf", str(home / cache_id)], check=True)
    # a blob no image references
    data = b"orphan"
    (berth.root / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    dead = subprocess.Popen(["true"])
    dead.wait()
    state = ('{"Status": "running", "Running": true, "Pid": %d, "PidStart": 1, "MonitorPid": %d, "MonitorStart": 1}'
             % (dead.pid, dead.pid))
    with db:
        db.execute("UPDATE containers SET state = ? WHERE id = ?", (state, cid))
    db.close()  # (ghost: a container marked running whose monitor is gone)
    # a lock file of a container that is gone
    (berth.runroot / "locks" / f"container-{'cd' * 32}.lock").write_text("")

    proc = check(berth)
    assert proc.returncode == 1, proc
    lines = proc.stdout.splitlines()
    expected = [f"layer directory {stray} of storage driver overlay2 has no record",
                "is recorded but missing from storage driver overlay2",
                f"blob sha256:{hashlib.sha256(data).hexdigest()} is referenced by no image",
                f"container {cid[:12]} (ghost) is marked running but its monitor is gone",
                f"lock container-{'cd' * 32}.lock is left from something that no longer exists"]
    for text in expected:
        assert any(text in line for line in lines), (text, lines)
    assert "kept" not in proc.stdout
    assert proc.stderr == "Error: 5 inconsistencies found (berth system check --repair fixes them)\n"

    proc = check(berth, "--repair")
    assert proc.returncode == 0, proc
    assert len(proc.stdout.splitlines()) == 5 and all(line.startswith("repaired: ") for line in proc.stdout.splitlines())
    proc = check(berth)
    assert proc.returncode == 0 and proc.stdout == "", proc
    assert not (home / stray).exists()
    assert berth("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.splitlines() == ["ghost exited", "kept created"]


def test_lock_files_do_not_pile_up(berth):
    berth.image
    for _ in range(3):
        berth("run", "--rm", "--network", "none", berth.image, "true", check=True)
    cid = berth("run", "-d", "--network", "none", berth.image, "true", check=True).stdout.strip()
    berth("wait", cid, check=True)
    berth("rm", cid, check=True)
    locks = sorted(os.listdir(berth.runroot / "locks"))
    assert not [name for name in locks if name.startswith("container-")], locks
    assert check(berth).returncode == 0


def test_a_layer_of_a_killed_pull_is_removed_by_the_next_command(berth):
    """The pull is killed while its layer blob trickles in: the layer was created, never recorded."""
    image = make_image(layer_size=20000)

    def trickle(server, method, path, conn):
        server.send(conn, 200, {"Content-Length": str(len(image.layer))})
        for i in range(len(image.layer)):
            if server.stopped.wait(0.05):
                break
            conn.sendall(image.layer[i:i + 1])
        return False

    server = HostileServer(serving(image, blob_handler=trickle))
    try:
        pull = berth.popen("pull", f"{server.location}/x:latest", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        markers = berth.root / "incomplete" / "overlay2"
        deadline = time.monotonic() + 30
        while not (markers.is_dir() and any(markers.iterdir())):
            assert time.monotonic() < deadline and pull.poll() is None, "the pull never created its layer"
            time.sleep(0.02)
        time.sleep(0.2)
        pull.send_signal(signal.SIGKILL)
        pull.wait()
    finally:
        server.stop()
    layer = next(markers.iterdir()).name
    assert (berth.root / "overlay2" / layer).is_dir()  # what a killed pull left
    berth.image  # the next command that opens the storage driver: an import
    assert not (berth.root / "overlay2" / layer).exists()
    assert list(markers.iterdir()) == []
    proc = check(berth)  # only the blobs it had downloaded are left, for a later pull or garbage collection
    assert proc.returncode == 1 and all(" is referenced by no image" in line for line in proc.stdout.splitlines())
    berth("image", "prune", "-f", check=True)
    proc = check(berth)
    assert proc.returncode == 0, proc.stdout


def test_a_container_paused_by_a_killed_commit_is_thawed_by_the_next_command(berth):
    berth.image
    berth("run", "-d", "--name", "src", "--network", "none", berth.image, "sh", "-c",
          "dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null; touch /done; sleep 600", check=True)
    deadline = time.monotonic() + 30
    while berth("exec", "src", "test", "-e", "/done").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    commit = berth.popen("commit", "src", "snap:1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = berth.root / "berth.db"
    deadline = time.monotonic() + 30
    while '"Status":"paused"' not in sqlite3.connect(db).execute("SELECT state FROM containers").fetchone()[0]:
        assert time.monotonic() < deadline and commit.poll() is None, "the commit never paused its container"
        time.sleep(0.005)
    commit.send_signal(signal.SIGKILL)
    commit.wait()
    assert berth("ps", "--format", "{{.Names}} {{.State}}").stdout == "src running\n"
    assert berth("exec", "src", "true").returncode == 0  # thawed: it runs again
    berth("rm", "-f", "src", check=True)
    berth("image", "prune", "-f", check=True)
    assert check(berth).returncode == 0
