"""kill -9 at random moments (issue #11): pull, commit, run -d, rm, network
create and volume create are started side by side and each is killed after
a random delay. After each round, once the next commands ran, `berth system
check` is clean and every container process is one `ps` lists as running;
at the end, with everything removed, no mount, cgroup, veth or process of
this installation is left. Bounded: a few rounds, well under a minute."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

from test_hostile_servers import HostileServer, serving

from berth.testing.registries import make_image

ROUNDS = 3
# berth's container cgroups: cgroup v2, else v1's pids hierarchy (every container has one there)
CGROUPS = next((d for d in ("/sys/fs/cgroup/berth", "/sys/fs/cgroup/pids/berth")
                if os.path.exists(os.path.dirname(d) + "/cgroup.procs")), "/sys/fs/cgroup/berth")


def our_container_ids(berth) -> set[str]:
    """Every container this installation ever created (its event journal names them, removed ones too)."""
    import json

    try:
        lines = (berth.root / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return set()
    ids = set()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("Type") == "container":
            ids.add(event["Actor"]["ID"])
    return ids


def our_cgroups(berth) -> dict[str, list[int]]:
    """The cgroups of this installation's containers that hold a process: container ID -> PIDs."""
    out = {}
    for name in our_container_ids(berth):
        try:
            with open(f"{CGROUPS}/{name}/cgroup.procs") as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            continue
        if pids:
            out[name] = pids
    return out


def our_processes(berth) -> list[str]:
    """Processes whose command line names this installation's root (commands, monitors)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(berth.root) in cmdline and "pytest" not in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def kill_leftovers(berth) -> None:
    """After a failure: end what a broken berth left running (container processes, monitors)."""
    for pids in our_cgroups(berth).values():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for line in our_processes(berth):
        try:
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def our_mounts(berth) -> list[str]:
    with open("/proc/mounts") as f:
        return [line for line in f if f" {berth.root}" in line or f" {berth.runroot}" in line]


def our_veths(berth) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", berth.bridge], capture_output=True, text=True)
    return out.stdout.splitlines() if out.returncode == 0 else []


def listed_running(berth) -> set[str]:
    lines = berth("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}", check=True).stdout.splitlines()
    return {line.split()[0] for line in lines if line.endswith(" running")}


def assert_every_process_listed(berth, round_: int) -> None:
    """Each container process runs in a container ps lists as running. A monitor
    records the start right after the process exists (one step under the
    container's lock), so one seen first is listed within moments."""
    for name, pids in our_cgroups(berth).items():
        deadline = time.monotonic() + 10
        while name not in listed_running(berth):
            assert time.monotonic() < deadline, f"round {round_}: cgroup {name} runs {pids}, ps does not list it"
            time.sleep(0.2)


def test_kill_9_at_random_moments_leaves_nothing_unlisted(berth):
    rng = random.Random(int(os.environ.get("BT_FAULT_SEED", time.time())))
    berth.image
    image = make_image(layer_size=300_000)
    server = HostileServer(serving(image))
    berth("run", "-d", "--name", "source", berth.image, "sh", "-c", "echo x > /made; sleep 600", check=True)
    try:
        for round_ in range(ROUNDS):
            victim = f"victim{round_}"
            berth("run", "-d", "--name", victim, berth.image, "sleep", "600", check=True)
            commands = [
                ["pull", f"{server.location}/x:r{round_}"],
                ["commit", "source", f"committed:r{round_}"],
                ["run", "-d", "--name", f"r{round_}", berth.image, "sleep", "600"],
                ["rm", "-f", victim],
                ["network", "create", f"net{round_}"],
                ["volume", "create", f"vol{round_}"],
            ]
            procs = [(argv, berth.popen(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                      rng.uniform(0.0, 0.8)) for argv in commands]
            started = time.monotonic()
            # and, not killed, an rm -f of the container that run -d is starting: it must not
            # remove the row while the monitor starts the process (that one ran on, unlisted)
            racer_delay, racer = rng.uniform(0.2, 1.0), None
            for _, proc, delay in sorted(procs, key=lambda p: p[2]) + [(None, None, racer_delay)]:
                time.sleep(max(0.0, started + delay - time.monotonic()))
                if proc is None:
                    racer = berth.popen("rm", "-f", f"r{round_}", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                else:
                    proc.send_signal(signal.SIGKILL)
            for _, proc, _ in procs:
                proc.wait(timeout=30)
            racer.wait(timeout=60)
            # the next commands: ps reconciles, prune collects what the killed ones downloaded
            berth("ps", "-a", check=True)
            berth("image", "prune", "-f", check=True, timeout=120)
            proc = berth("system", "check", timeout=120)
            assert proc.returncode == 0, f"round {round_} ({[(a[0], round(d, 2)) for a, _, d in procs]}): {proc}"
            assert_every_process_listed(berth, round_)
    finally:
        server.stop()
        ids = berth("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            berth("rm", "-f", *ids, timeout=120)
        berth("network", "prune", "-f", timeout=60)
        berth("volume", "prune", "-af", timeout=60)
        leftovers = our_cgroups(berth), our_processes(berth)
        kill_leftovers(berth)
    assert leftovers == ({}, [])
    assert berth("system", "check", timeout=120).returncode == 0
    assert our_veths(berth) == []
    assert [m for m in our_mounts(berth) if "/overlay2/" in m or "/containers/" in m] == []
