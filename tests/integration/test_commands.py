"""Docker's everyday listing filters and flag spellings, read from what the user sees."""

from __future__ import annotations

import json
import re

from harness import inspect

from berth.core.plumbing.units import human_size


def _names(berth, *filters: str) -> list[str]:
    argv = ["ps", "-a", "--format", "{{.Names}}"]
    for f in filters:
        argv += ["--filter", f]
    proc = berth(*argv, check=True)
    return sorted(proc.stdout.split())


def test_ps_filters_before_since_volume_network_publish_expose(berth):
    img = berth.image
    berth("volume", "create", "data", check=True)
    berth("network", "create", "backend", check=True)
    berth("create", "--name", "first", "-v", "data:/data", img, "true", check=True)
    berth("create", "--name", "second", "--network", "backend", "--expose", "9000", img, "true", check=True)
    berth("run", "-d", "--name", "third", "-p", "127.0.0.1:18080:80", img, "sleep", "30", check=True)
    assert _names(berth, "before=second") == ["first"]
    assert _names(berth, "since=first") == ["second", "third"]
    assert _names(berth, "since=first", "before=third") == ["second"]
    assert _names(berth, "volume=data") == ["first"]
    assert _names(berth, "volume=/data") == ["first"]
    assert _names(berth, "network=backend") == ["second"]
    assert _names(berth, "publish=18080") == ["third"]
    assert _names(berth, "publish=18000-18100/tcp") == ["third"]
    assert _names(berth, "publish=18080/udp") == []
    assert _names(berth, "expose=9000") == ["second"]
    assert _names(berth, "expose=80") == ["third"]
    bad = berth("ps", "--filter", "publish=nope")
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == ["Error: Error parsing port range: nope"]
    missing = berth("ps", "--filter", "before=ghost")
    assert missing.returncode != 0 and "ghost" in missing.stderr and "Traceback" not in missing.stderr
    berth("stop", "--timeout", "0", "third", check=True)
    assert berth("ps", "-q").stdout.strip() == ""
    berth("start", "third", check=True)
    assert berth("restart", "--timeout", "0", "third", check=True).stdout.strip() == "third"
    berth("rm", "-f", "first", "second", "third", check=True)
    berth("network", "rm", "backend", check=True)


def test_volume_create_label_without_value(berth):
    berth("volume", "create", "--label", "backup", "--label", "tier=gold", "v1", check=True)
    out = berth("volume", "inspect", "--format", "{{json .Labels}}", "v1", check=True).stdout.strip()
    assert out == '{"backup":"","tier":"gold"}'


def test_history_human_flag_as_docker_parses_it(berth):
    img = berth.image
    human = berth("history", "-H", img, check=True).stdout
    assert human.splitlines()[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    raw = berth("history", "-H=false", img, check=True).stdout
    assert raw != human and "ago" in human and "ago" not in raw
    assert berth("history", "--human=false", img, check=True).stdout == raw


def test_export_writes_the_containers_filesystem(berth, tmp_path):
    import io
    import tarfile

    img = berth.image
    berth("run", "--name", "ex", img, "sh", "-c", "echo hello > /made-here", check=True)
    out = tmp_path / "ex.tar"
    berth("export", "-o", str(out), "ex", check=True)
    with tarfile.open(out) as tar:
        names = {n.rstrip("/").lstrip("./").lstrip("/") for n in tar.getnames()}
        member = next(m for m in tar.getmembers() if m.name.rstrip("/").endswith("made-here"))
        assert tar.extractfile(member).read() == b"hello\n"
    assert "bin" in names and "etc" in names
    streamed = berth("container", "export", "ex", input=b"", check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(streamed)) as tar:
        assert any(n.rstrip("/").endswith("made-here") for n in tar.getnames())
    missing = berth("export", "-o", str(tmp_path / "no.tar"), "ghost")
    assert missing.returncode == 1 and not (tmp_path / "no.tar").exists()
    assert missing.stderr.strip().splitlines() == ["Error: No such container: ghost"]


def test_stats_no_stream_reads_the_cgroup(berth):
    img = berth.image
    berth("run", "-d", "--name", "busy", "-m", "64m", img, "sh", "-c",
          "dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>/dev/null; while :; do :; done", check=True)
    berth("run", "-d", "--name", "idle", img, "sleep", "30", check=True)
    import time

    time.sleep(1)
    out = berth("stats", "--no-stream", check=True).stdout.splitlines()
    assert out[0].split("  ")[0] == "CONTAINER ID" and "MEM USAGE / LIMIT" in out[0] and out[0].rstrip().endswith("PIDS")
    assert len(out) == 3
    rows = berth("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.PIDs}}",
                 "busy", "idle", check=True).stdout.splitlines()
    busy, idle = (r.split() for r in rows)
    assert busy[0] == "busy" and float(busy[1].rstrip("%")) > 20  # a spinning shell
    assert busy[3] == "/" and busy[4] == "64.00MiB"  # its -m limit
    assert busy[2].endswith("MiB") and float(busy[2][:-3]) >= 8  # the 8 MB it wrote (page cache) counts
    assert idle[0] == "idle" and float(idle[1].rstrip("%")) < 5 and idle[-1] == "1"
    net = berth("stats", "--no-stream", "--format", "{{.NetIO}}|{{.BlockIO}}", "busy", check=True).stdout.strip()
    assert net.count(" / ") == 2
    gone = berth("stats", "--no-stream", "ghost")
    assert gone.returncode == 1 and gone.stderr.strip() == "Error: No such container: ghost"
    berth("rm", "-f", "busy", "idle", check=True)


def test_container_and_image_prune_filters(berth):
    img = berth.image
    berth("create", "--name", "keepme", "--label", "keep=yes", img, "true", check=True)
    berth("create", "--name", "dropme", img, "true", check=True)
    out = berth("container", "prune", "-f", "--filter", "label!=keep", check=True).stdout
    assert out.startswith("Deleted Containers:") and len(out.splitlines()) == 4  # header, one id, blank, total
    assert _names(berth) == ["keepme"]
    out = berth("container", "prune", "-f", "--filter", "until=1h", check=True).stdout  # made seconds ago: kept
    assert out == "Total reclaimed space: 0B\n" and _names(berth) == ["keepme"]
    bad = berth("container", "prune", "-f", "--filter", "colour=red")
    assert bad.returncode != 0 and bad.stderr.strip() == "Error: invalid filter 'colour'"
    berth("rm", "keepme", check=True)
    berth("tag", img, "extra:1", check=True)
    # without -f, Docker's question; anything but y keeps everything
    refused = berth("image", "prune", "-a", input="n\n")
    assert refused.returncode == 0 and refused.stdout.startswith(
        "WARNING! This will remove all images without at least one container associated to them.\n"
        "Are you sure you want to continue? [y/N]")
    assert "extra:1" in berth("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    out = berth("image", "prune", "-a", "-f", "--filter", "until=1h", check=True).stdout
    assert "Deleted Images:" not in out
    out = berth("image", "prune", "-a", "-f", "--filter", "label=nope", check=True).stdout
    assert "Deleted Images:" not in out
    assert berth("image", "prune", "-a", "-f", check=True).stdout.startswith("Deleted Images:")


def test_images_filters_and_created_at(berth, tmp_path):
    import re
    import time

    berth("import", str(berth.rootfs), "older:1", check=True)
    time.sleep(1.1)
    berth("import", "--change", "LABEL tier=gold", str(berth.rootfs), "newer:1", check=True)

    def repos(*filters):
        argv = ["images", "--format", "{{.Repository}}"]
        for f in filters:
            argv += ["--filter", f]
        return sorted(berth(*argv, check=True).stdout.split())

    assert repos("label=tier=gold") == ["newer"]
    assert repos("label=tier") == ["newer"]
    assert repos("before=newer:1") == ["older"]
    assert repos("since=older:1") == ["newer"]
    assert repos("reference=old*") == ["older"]
    created = berth("images", "--format", "{{.CreatedAt}}", "newer", check=True).stdout.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", created), created
    berth("create", "--name", "c1", "older:1", "true", check=True)
    made = berth("ps", "-a", "--format", "{{.CreatedAt}}", check=True).stdout.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", made), made
    berth("rm", "c1", check=True)


def test_management_forms_docker_has(berth, tmp_path):
    img = berth.image
    berth("container", "run", "-d", "--name", "pub", "-p", "127.0.0.1:18081:80", img, "sleep", "30", check=True)
    assert berth("container", "port", "pub", check=True).stdout.strip() == "80/tcp -> 127.0.0.1:18081"
    assert berth("container", "ls", "--format", "{{.Names}}", check=True).stdout.split() == ["pub"]
    berth("container", "rm", "-f", "pub", check=True)
    (tmp_path / "Dockerfile").write_text(f"FROM {img}\nLABEL made=by-image-build\n")
    berth("image", "build", "-q", "-t", "built:1", str(tmp_path), check=True)
    assert berth("image", "ls", "--filter", "label=made", "--format", "{{.Repository}}:{{.Tag}}",
                 check=True).stdout.split() == ["built:1"]
    info = berth("system", "info", check=True).stdout
    assert info.splitlines()[0] == berth("info", check=True).stdout.splitlines()[0]


def test_system_df(berth):
    img = berth.image
    berth("volume", "create", "dfvol", check=True)
    berth("run", "--name", "writer", "-v", "dfvol:/v", img, "sh", "-c",
          "head -c 300000 /dev/zero > /v/blob; head -c 200000 /dev/zero > /made", check=True)
    lines = berth("system", "df", check=True).stdout.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    by_type = {line[:16].strip(): line[16:].split() for line in lines[1:]}
    assert by_type["Images"][:2] == ["1", "1"]
    assert by_type["Containers"][:2] == ["1", "0"]
    assert by_type["Containers"][2].endswith("kB") and float(by_type["Containers"][2][:-2]) >= 200
    assert by_type["Local Volumes"][:3] == ["1", "1", "300kB"]
    assert by_type["Local Volumes"][3:] == ["0B", "(0%)"]
    assert by_type["Build Cache"] == ["0", "0", "0B", "0B"]
    # -v: Docker's four sections; an image committed from the container shares the base's layer
    berth("commit", "writer", "dfimage:1", check=True)
    verbose = berth("system", "df", "-v", check=True).stdout
    sections = verbose.split("\n\n")
    assert sections[0] == "Images space usage:" and sections[2] == "Containers space usage:"
    assert sections[4] == "Local Volumes space usage:" and sections[6] == "Build cache usage: 0B"
    assert re.split(" {2,}", sections[1].splitlines()[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE",
                                                       "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]
    committed = next(line.split() for line in sections[1].splitlines() if line.startswith("dfimage "))
    base = json.loads(berth("image", "inspect", img, check=True).stdout)[0]
    assert committed[-3] == human_size(base["Size"]) and committed[-1] == "0"  # shared: the base layer; no container
    container = sections[3].splitlines()[1]
    assert container.startswith(inspect(berth, "writer")["Id"][:12]) and container.endswith("   writer")
    assert "   1   " in container  # one local volume
    assert sections[5].splitlines()[1].split() == ["dfvol", "1", "300kB"]
    as_json = json.loads(berth("system", "df", "-v", "--format", "json", check=True).stdout)
    assert {v["Name"]: v["Links"] for v in as_json["Volumes"]} == {"dfvol": "1"}
    berth("rm", "writer", check=True)
    assert berth("system", "df", "--format", "{{.Type}} {{.Active}} {{.Reclaimable}}",
                 check=True).stdout.splitlines()[2] == "Local Volumes 0 300kB (100%)"


def test_system_prune(berth):
    img = berth.image
    spare = berth("import", str(berth.rootfs), "spare:1", check=True).stdout.strip()  # no container uses it
    berth("network", "create", "unused", check=True)
    berth("create", "--name", "stopped", img, "true", check=True)
    berth("run", "-d", "--name", "alive", img, "sleep", "30", check=True)
    refused = berth("system", "prune", input="n\n")
    assert refused.stdout.startswith("WARNING! This will remove:\n  - all stopped containers\n")
    assert _names(berth) == ["alive", "stopped"]
    out = berth("system", "prune", "-a", "-f", check=True).stdout
    assert out.startswith("Deleted Containers:\n") and "Deleted Networks:\nunused\n" in out
    assert f"Deleted Images:\ndeleted: {spare}\n" in out
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    assert _names(berth) == ["alive"]
    assert berth("images", "--format", "{{.Repository}}", check=True).stdout.split() == [img.split(":")[0]]
    berth("rm", "-f", "alive", check=True)


def test_volume_and_network_prune_filters(berth):
    berth("volume", "create", "--label", "keep", "kept", check=True)
    berth("volume", "create", "dropped", check=True)
    out = berth("volume", "prune", "-a", "-f", "--filter", "label!=keep", check=True).stdout
    assert out.startswith("Deleted Volumes:\ndropped\n")
    assert berth("volume", "ls", "-q", check=True).stdout.split() == ["kept"]
    berth("network", "create", "--label", "team=a", "neta", check=True)
    berth("network", "create", "netb", check=True)
    assert berth("network", "prune", "-f", "--filter", "until=1h", check=True).stdout == ""
    out = berth("network", "prune", "-f", "--filter", "label=team=a", check=True).stdout
    assert out == "Deleted Networks:\nneta\n"
    berth("network", "rm", "netb", check=True)


def test_update_changes_a_running_containers_limits(berth):
    img = berth.image
    berth("run", "-d", "--name", "upd", "-m", "64m", img, "sleep", "30", check=True)
    assert berth("update", "-m", "48m", "--pids-limit", "20", "upd", check=True).stdout.strip() == "upd"
    limit = berth("stats", "--no-stream", "--format", "{{.MemUsage}}", "upd", check=True).stdout.split(" / ")[1]
    assert limit.strip() == "48.00MiB"  # the cgroup says so
    assert berth("inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", "upd",
                 check=True).stdout.split() == [str(48 * 1024 * 1024), "20"]
    bare = berth("update", "upd")
    assert bare.returncode != 0 and "one or more flags" in bare.stderr
    berth("rm", "-f", "upd", check=True)
