#!/usr/bin/env python3
"""Side-by-side benchmarks: berth against podman (and skopeo for pulls).

Each scenario runs both engines in the same session, alternating, on fresh
temporary roots, and reports the medians and the ratio berth/peer (below 1
means berth is faster). Run as root from a virtual environment where berth
is installed (not editable, for honest start-up times):

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install .
    BERTH=/tmp/bench-venv/bin/berth /tmp/bench-venv/bin/python bench/run.py [SCENARIO ...]

Scenarios: help, import, run, run-flags, many, bridge, pull, build, api. Results: bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from rootfs import make_rootfs_tar  # noqa: E402  (the tests' busybox image builder)

BERTH = os.environ.get("BERTH", shutil.which("berth") or "berth")
PODMAN_ULIMITS = ["--ulimit", "nproc=4096:4096", "--ulimit", "nofile=1024:1024"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def timed(cmds: list[list[str]]) -> float:
    start = time.perf_counter()
    for cmd in cmds:
        sh(cmd)
    return time.perf_counter() - start


class Engine:
    """One installation of an engine on temporary roots."""

    def __init__(self, kind: str, base: Path):
        self.kind = kind
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        if kind == "berth":
            self.env = dict(os.environ)  # BERTH_CONFIG is set for the whole run by main()
            self.argv = [BERTH, "--root", str(base / "root"), "--runroot", str(base / "run")]
        else:
            self.env = dict(os.environ)
            self.argv = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
                         "--runtime", "runc", "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
                         "--events-backend", "file", "--tmpdir", str(base / "tmp")]

    def cmd(self, *args: str) -> list[str]:
        extra = list(PODMAN_ULIMITS) if self.kind == "podman" and args and args[0] in ("run", "build") else []
        return self.argv + [args[0]] + extra + list(args[1:])

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), check=True, capture_output=True, text=True, env=self.env, **kw)

    def cleanup(self) -> None:
        if self.kind == "berth":
            ids = subprocess.run(self.argv + ["ps", "-aq"], capture_output=True, text=True, env=self.env).stdout.split()
            if ids:
                subprocess.run(self.argv + ["rm", "-f", *ids], capture_output=True, env=self.env)
        else:
            subprocess.run(self.argv + ["rm", "-af"], capture_output=True)
            subprocess.run(self.argv + ["system", "reset", "-f"], capture_output=True)
        subprocess.run(["sh", "-c", f"grep -o ' {self.base}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"],
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def compare(name: str, rounds: int, berth_fn, podman_fn) -> dict:
    """Alternate the two; return medians and the ratio."""
    b, p = [], []
    for i in range(rounds):
        pair = [(b, berth_fn), (p, podman_fn)] if i % 2 == 0 else [(p, podman_fn), (b, berth_fn)]
        for bucket, fn in pair:
            bucket.append(fn())
    mb, mp = statistics.median(b), statistics.median(p)
    if os.environ.get("BENCH_SAMPLES"):
        print("  berth", [round(x * 1000) for x in b], "peer", [round(x * 1000) for x in p], flush=True)
    row = {"scenario": name, "berth_s": mb, "peer_s": mp, "ratio": mb / mp, "rounds": rounds}
    print(f"{name:48s} berth {mb*1000:8.1f} ms   peer {mp*1000:8.1f} ms   ratio {mb/mp:5.2f}", flush=True)
    return row


@contextlib.contextmanager
def engines(tmp: Path, name: str):
    b, p = Engine("berth", tmp / f"{name}-berth"), Engine("podman", tmp / f"{name}-podman")
    try:
        yield b, p
    finally:
        b.cleanup()
        p.cleanup()


def bench_help(tmp: Path, rootfs: Path) -> list[dict]:
    """--help however the line is written: plain, after global flags, a command's, a bare group."""
    flags = ["--root", str(tmp / "help-root"), "--runroot", str(tmp / "help-run")]
    forms = [("--help", ["--help"]), ("--root R --runroot RR --help", [*flags, "--help"]),
             ("--root R --runroot RR ps --help", [*flags, "ps", "--help"]),
             ("--root R --runroot RR volume create --help", [*flags, "volume", "create", "--help"])]
    return [compare(name, 30, lambda a=args: timed([[BERTH, *a]]), lambda a=args: timed([["podman", *a]]))
            for name, args in forms]


def bench_import(tmp: Path, rootfs: Path) -> list[dict]:
    counter = iter(range(10**6))

    def one(kind):
        def go():
            e = Engine(kind, tmp / f"imp-{kind}-{next(counter)}")
            try:
                return timed([e.cmd("import", str(rootfs), "bench/busybox:latest"), e.cmd("images")])
            finally:
                e.cleanup()
        return go

    return [compare("import + images (fresh root)", 10, one("berth"), one("podman"))]


def bench_run(tmp: Path, rootfs: Path) -> list[dict]:
    with engines(tmp, "run") as (b, p):
        b.run("import", str(rootfs), "bench/busybox")
        p.run("import", str(rootfs), "bench/busybox")
        return [compare("run --rm --network none IMAGE true", 20,
                        lambda: timed([b.cmd("run", "--rm", "--network", "none", "bench/busybox", "true")]),
                        lambda: timed([p.cmd("run", "--rm", "--network", "none", "bench/busybox", "true")]))]


# Everyday run flags of issue 12, each with work at start (files, rlimits, sysctls, namespaces, an init).
# (podman refuses --dns with --network none and --init with --pid host, Docker and berth take them: not here)
RUN_FLAGS = ("--add-host", "db:10.0.0.2", "--ulimit", "nofile=1024:2048", "--sysctl", "net.ipv4.ip_forward=1",
             "--security-opt", "no-new-privileges", "--cap-add", "NET_ADMIN", "--group-add", "10",
             "--oom-score-adj", "100", "--init")


def bench_run_flags(tmp: Path, rootfs: Path) -> list[dict]:
    with engines(tmp, "runflags") as (b, p):
        b.run("import", str(rootfs), "bench/busybox")
        p.run("import", str(rootfs), "bench/busybox")
        return [compare("run --rm --network none + 8 flags IMAGE true", 20,
                        lambda: timed([b.cmd("run", "--rm", "--network", "none", *RUN_FLAGS, "bench/busybox",
                                             "true")]),
                        lambda: timed([p.cmd("run", "--rm", "--network", "none", *RUN_FLAGS, "bench/busybox",
                                             "true")]))]


def bench_many(tmp: Path, rootfs: Path) -> list[dict]:
    def fifty(e: Engine):
        def go():
            start = time.perf_counter()
            for _ in range(50):
                sh(e.cmd("run", "-d", "--network", "none", "bench/busybox", "sleep", "600"), env=e.env)
            sh(e.cmd("ps", "-a"), env=e.env)
            took = time.perf_counter() - start
            ids = e.run("ps", "-aq").stdout.split()
            subprocess.run(e.cmd("rm", "-f", "-t", "0", *ids) if e.kind == "podman" else e.cmd("rm", "-f", *ids),
                           capture_output=True, env=e.env)
            return took
        return go

    with engines(tmp, "many") as (b, p):
        b.run("import", str(rootfs), "bench/busybox")
        p.run("import", str(rootfs), "bench/busybox")
        rows = [compare("50 x run -d, then ps -a", 3, fifty(b), fifty(p))]
        rss = monitor_rss(b)
        if rss:
            print(f"   berth monitor memory with 20 detached containers: {rss/1024:.1f} MiB PSS each")
            rows[0]["monitor_pss_kib"] = rss
        return rows


def monitor_rss(b: Engine) -> float | None:
    """Mean proportional set size (kB) of berth's monitor processes."""
    for _ in range(20):
        b.run("run", "-d", "--network", "none", "bench/busybox", "sleep", "600")
    try:
        # The monitor is the parent of the container's PID 1.
        pids = []
        for cid in b.run("ps", "-q").stdout.split():
            pid = json.loads(b.run("inspect", cid).stdout)[0]["State"]["Pid"]
            with open(f"/proc/{pid}/stat") as f:
                pids.append(int(f.read().rsplit(")", 1)[1].split()[1]))
        values = []
        for pid in filter(None, pids):
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        values.append(int(line.split()[1]))
        return statistics.mean(values) if values else None
    finally:
        ids = b.run("ps", "-aq").stdout.split()
        subprocess.run(b.cmd("rm", "-f", *ids), capture_output=True, env=b.env)


def bench_bridge(tmp: Path, rootfs: Path) -> list[dict]:
    with engines(tmp, "bridge") as (b, p):
        b.run("import", str(rootfs), "bench/busybox")
        p.run("import", str(rootfs), "bench/busybox")
        rows = [compare("run --rm IMAGE true (bridge)", 15,
                        lambda: timed([b.cmd("run", "--rm", "bench/busybox", "true")]),
                        lambda: timed([p.cmd("run", "--rm", "bench/busybox", "true")]))]
        # 20 at once: all distinct addresses.
        procs = [subprocess.Popen(b.cmd("run", "-d", "bench/busybox", "sleep", "600"), env=b.env,
                                  stdout=subprocess.PIPE, text=True) for _ in range(20)]
        ids = [pr.communicate()[0].strip() for pr in procs]
        addrs = [b.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", i).stdout.strip() for i in ids if i]
        print(f"   20 containers started at once on the bridge: {len(set(addrs))} distinct addresses")
        rows[0]["distinct_addresses_of_20"] = len(set(addrs))
        subprocess.run(b.cmd("rm", "-f", *ids), capture_output=True, env=b.env)
        return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_pull(tmp: Path, rootfs: Path) -> list[dict]:
    """~100 MB in 5 layers pushed to a local registry, pulled by each on clean roots."""
    port = free_port()
    reg = tmp / "registry"
    (reg / "data").mkdir(parents=True)
    (reg / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {reg}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    server = subprocess.Popen(["docker-registry", "serve", str(reg / "config.yml")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        src = tmp / "layers"
        layout = tmp / "oci"
        name = f"127.0.0.1:{port}/bench/big:latest"
        # Build the image with umoci: busybox plus 5 layers of 20 MB random data.
        sh(["umoci", "init", "--layout", str(layout)])
        sh(["umoci", "new", "--image", f"{layout}:big"])
        sh(["umoci", "unpack", "--image", f"{layout}:big", str(src)])
        shutil.unpack_archive(str(rootfs), str(src / "rootfs"), "tar")
        # --refresh-bundle: each repack diffs against the last one, so every step is its own layer.
        repack = ["umoci", "repack", "--refresh-bundle", "--image", f"{layout}:big", str(src)]
        sh(repack)
        for i in range(5):
            with open(src / "rootfs" / f"blob{i}", "wb") as f:
                f.write(os.urandom(20 << 20))
            sh(repack)
        sh(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:big", f"docker://{name}"])
        inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{name}"],
                                   check=True, capture_output=True, text=True).stdout
        assert len(json.loads(inspected)["Layers"]) == 6, "the bench image must have 6 layers"
        counter = iter(range(10**6))

        def pull(kind):
            def go():
                e = Engine(kind, tmp / f"pull-{kind}-{next(counter)}")
                try:
                    extra = ["--tls-verify=false"] if kind == "podman" else []
                    return timed([e.cmd("pull", "-q", *extra, name)])
                finally:
                    e.cleanup()
            return go

        def skopeo():
            d = tmp / f"skopeo-{next(counter)}"
            try:
                return timed([["skopeo", "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{d}:big"]])
            finally:
                shutil.rmtree(d, ignore_errors=True)

        rows = [compare("pull ~100 MB, 6 layers, local registry (vs podman)", 5, pull("berth"), pull("podman"))]
        rows.append(compare("pull ~100 MB, 6 layers, local registry (vs skopeo)", 5, pull("berth"), skopeo))
        return rows
    finally:
        server.terminate()
        server.wait(10)


BUILD_DOCKERFILE = """FROM bench/busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY data /app/data
RUN echo one > /app/one
RUN mkdir -p /app/logs && echo two > /app/logs/two
RUN cat /app/one /app/logs/two > /app/both
CMD ["cat", "/app/both"]
"""


def bench_build(tmp: Path, rootfs: Path) -> list[dict]:
    """8 instructions (a COPY of 20 MB in 20 files, 3 RUN): a cold build (--no-cache) and a fully
    cached rebuild. RUN steps on --network none on both sides: this measures the builders."""
    ctx = tmp / "build-context"
    (ctx / "data").mkdir(parents=True)
    for i in range(20):
        (ctx / "data" / f"blob{i:02d}").write_bytes(os.urandom(1 << 20))
    (ctx / "Dockerfile").write_text(BUILD_DOCKERFILE)
    with engines(tmp, "build") as (b, p):
        b.run("import", str(rootfs), "bench/busybox")
        p.run("import", str(rootfs), "bench/busybox")

        def build(e: Engine, *extra: str):
            return lambda: timed([e.cmd("build", "--network", "none", *extra, "-t", "bench/app", str(ctx))])

        rows = [compare("build, cold (--no-cache): 8 steps, COPY 20 MB, 3 RUN", 5,
                        build(b, "--no-cache"), build(p, "--no-cache"))]
        build(b)()
        build(p)()
        rows.append(compare("build, fully cached rebuild", 10, build(b), build(p)))
        return rows


# -- the Engine API: the docker CLI against `berth system service` and `podman system service` ------------

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


class Service:
    """An engine's Docker API service on a unix socket of its own; `docker(...)` argv for it."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.socket = engine.base / f"{engine.kind}.sock"
        self.proc = subprocess.Popen(engine.argv + ["system", "service", "-t", "0", f"unix://{self.socket}"],
                                     env=engine.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}",
                        DOCKER_CONFIG=str(engine.base / "docker-config"))
        deadline = time.monotonic() + 30
        while subprocess.run([DOCKER, "version"], env=self.env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{engine.kind} system service did not answer")
            time.sleep(0.1)

    def docker(self, *args: str) -> list[str]:
        extra = list(PODMAN_ULIMITS) if self.engine.kind == "podman" and args[0] == "run" else []
        return [DOCKER, args[0], *extra, *args[1:]]

    def timed(self, *args: str) -> float:
        start = time.perf_counter()
        subprocess.run(self.docker(*args), check=True, env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        return time.perf_counter() - start

    def pss_kib(self) -> int:
        """Proportional set size of the service's processes (berth's starters included)."""
        total = 0
        pids = [self.proc.pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                                                                 capture_output=True, text=True).stdout.split()]
        for pid in pids:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bench_api(tmp: Path, rootfs: Path) -> list[dict]:
    """The docker CLI 28 through each engine's API service: run --rm, ps with 100 containers,
    20 parallel run -d, and the idle service's memory."""
    with engines(tmp, "api") as (b, p):
        b.run("import", str(rootfs), "bench/busybox")
        p.run("import", str(rootfs), "bench/busybox")
        services = {"berth": Service(b), "podman": Service(p)}
        try:
            rows = []
            idle = {kind: s.pss_kib() for kind, s in services.items()}
            for s in services.values():  # one run each to warm both up
                s.timed("run", "--rm", "bench/busybox", "true")
            rows.append(compare("API: docker run --rm IMAGE true (bridge)", 20,
                                lambda: services["berth"].timed("run", "--rm", "bench/busybox", "true"),
                                lambda: services["podman"].timed("run", "--rm", "bench/busybox", "true")))
            rows.append(compare("API: docker run --rm --network none IMAGE true", 20,
                                lambda: services["berth"].timed("run", "--rm", "--network", "none", "bench/busybox",
                                                                "true"),
                                lambda: services["podman"].timed("run", "--rm", "--network", "none",
                                                                 "bench/busybox", "true")))

            def parallel(kind):
                def go():
                    s = services[kind]
                    start = time.perf_counter()
                    procs = [subprocess.Popen(s.docker("run", "-d", "--network", "none", "bench/busybox",
                                                       "sleep", "600"), env=s.env, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, text=True) for _ in range(20)]
                    ids = [proc.communicate()[0].strip() for proc in procs]
                    took = time.perf_counter() - start
                    subprocess.run([DOCKER, "rm", "-f", *filter(None, ids)], env=s.env, capture_output=True)
                    return took
                return go

            rows.append(compare("API: 20 parallel docker run -d", 3, parallel("berth"), parallel("podman")))
            for s in services.values():
                for _ in range(100):
                    subprocess.run(s.docker("create", "--network", "none", "bench/busybox", "true"), env=s.env,
                                   check=True, capture_output=True)
            rows.append(compare("API: docker ps -a with 100 containers", 10,
                                lambda: services["berth"].timed("ps", "-a"),
                                lambda: services["podman"].timed("ps", "-a")))
            row = {"scenario": "API: idle service memory (PSS)", "berth_s": idle["berth"] / 1000,
                   "peer_s": idle["podman"] / 1000, "ratio": idle["berth"] / idle["podman"], "rounds": 1,
                   "unit": "MiB"}
            print(f"{row['scenario']:48s} berth {idle['berth'] / 1024:8.1f} MiB  peer {idle['podman'] / 1024:8.1f} MiB"
                  f"  ratio {row['ratio']:5.2f}", flush=True)
            rows.append(row)
            return rows
        finally:
            for s in services.values():
                s.stop()


def _pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))


def _monitors_pss_kib(e: Engine) -> int:
    """Total PSS of the processes that watch e's containers: the parent of each container's
    PID 1 (berth's monitor, podman's conmon)."""
    total = 0
    for cid in e.run("ps", "-q").stdout.split():
        pid = json.loads(e.run("inspect", cid).stdout)[0]["State"]["Pid"]
        with open(f"/proc/{pid}/stat") as f:
            total += _pss_kib(int(f.read().rsplit(")", 1)[1].split()[1]))
    return total


def _median_of(e: Engine, times: int, *args: str) -> float:
    return statistics.median(timed([e.cmd(*args)]) for _ in range(times))


def bench_scale(tmp: Path, rootfs: Path) -> list[dict]:
    """N detached containers per engine (N from --n, e.g. 100,1000): run -d of each, ps -a,
    inspect of one, the monitors' memory, rm -f of all; and how each grows from the smallest N
    to the largest (growth / N's growth: 1.0 is linear)."""
    rows, figures = [], {}
    for n in SCALE_N:
        for kind in ("berth", "podman"):
            e = Engine(kind, tmp / f"scale-{kind}-{n}")
            try:
                e.run("import", str(rootfs), "bench/busybox")
                start = time.perf_counter()
                for _ in range(n):
                    sh(e.cmd("run", "-d", "--network", "none", "bench/busybox", "sleep", "3600"), env=e.env)
                per_run = (time.perf_counter() - start) / n
                ids = e.run("ps", "-aq").stdout.split()
                assert len(ids) == n, f"{kind}: {len(ids)} containers, not {n}"
                ps = _median_of(e, 3, "ps", "-a")
                one = _median_of(e, 5, "inspect", ids[len(ids) // 2])
                pss = _monitors_pss_kib(e)
                rm = e.cmd("rm", "-f", *ids) if kind == "berth" else e.cmd("rm", "-f", "-t", "0", *ids)
                rm_all = timed([rm])
                figures[(kind, n)] = {"run -d (each)": per_run, "ps -a": ps, "inspect one": one, "rm -f all": rm_all,
                                      "monitors' PSS": pss / 1000}
                print(f"scale N={n} {kind}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures[(kind, n)].items()),
                      flush=True)
            finally:
                e.cleanup()
        for op in ("run -d (each)", "ps -a", "inspect one", "rm -f all", "monitors' PSS"):
            b, p = figures[("berth", n)][op], figures[("podman", n)][op]
            row = {"scenario": f"scale N={n}: {op}", "berth_s": b, "peer_s": p, "ratio": b / p, "rounds": 1}
            if op == "monitors' PSS":
                row["unit"] = "MiB"
            rows.append(row)
    low, high = min(SCALE_N), max(SCALE_N)
    if low != high:
        for op in ("ps -a", "inspect one", "rm -f all", "monitors' PSS"):
            growth = {k: figures[(k, high)][op] / figures[(k, low)][op] / (high / low) for k in ("berth", "podman")}
            print(f"scale growth {op} N={low}->{high} (1.0 = linear): berth {growth['berth']:.2f}, "
                  f"podman {growth['podman']:.2f}", flush=True)
            rows.append({"scenario": f"scale growth N={low}->{high}: {op} (1.0 = linear)", "berth_s": growth["berth"],
                         "peer_s": growth["podman"], "ratio": growth["berth"] / growth["podman"], "rounds": 1,
                         "unit": "x"})
    return rows


SCALE_N = [100, 1000]


SCENARIOS = {"help": bench_help, "import": bench_import, "run": bench_run, "run-flags": bench_run_flags,
             "many": bench_many,
             "bridge": bench_bridge, "pull": bench_pull, "build": bench_build, "api": bench_api,
             "scale": bench_scale}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=[s for s in SCENARIOS if s != "scale"])
    ap.add_argument("--n", default="100,1000", help="the scale scenario's counts of containers (default 100,1000)")
    args = ap.parse_args()
    SCALE_N[:] = [int(x) for x in args.n.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as t:
        tmp = Path(t)
        # berth's own bridge and subnet for the benchmark, never a real installation's
        conf = tmp / "berth.toml"
        conf.write_text('[network]\nbridge = "btbench0"\nsubnet = "10.214.0.0/24"\ngateway = "10.214.0.1"\n')
        os.environ["BERTH_CONFIG"] = str(conf)
        rootfs = make_rootfs_tar(tmp / "busybox.tar")
        for name in args.scenarios:
            try:
                rows.extend(SCENARIOS[name](tmp, rootfs))
            except subprocess.CalledProcessError as exc:
                print(f"{name}: FAILED: {' '.join(exc.cmd)}: {exc.stderr}", flush=True)
        subprocess.run(["ip", "link", "del", "btbench0"], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", "berth_btbench0"], capture_output=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    lines = ["| scenario | berth | peer | berth/peer |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['scenario']} | {_shown(r['berth_s'], r)} | {_shown(r['peer_s'], r)} | {r['ratio']:.2f} |"
              for r in rows]
    (out / "latest.md").write_text("\n".join(lines) + "\n")
    (out / "latest.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))


def _shown(value: float, row: dict) -> str:
    if row.get("unit") == "MiB":
        return f"{value * 1000 / 1024:.1f} MiB"
    if row.get("unit") == "x":
        return f"{value:.2f}x"
    return f"{value * 1000:.1f} ms"


if __name__ == "__main__":
    main()
