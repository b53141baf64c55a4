"""`berth build` through the real CLI: Docker's classic builder on real containers and layers.

Every build here runs RUN steps in real berth containers (--network none
unless the test is about the network), and every test checks that no
intermediate container is left behind.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import sqlite3
import tarfile
import threading
from pathlib import Path

import pytest

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def context(tmp_path: Path, dockerfile: str, files: dict[str, bytes | str] | None = None, name: str = "ctx") -> Path:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for rel, data in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def build(berth, ctx, *flags, check=True, **kw):
    proc = berth("build", "--network", "none", *flags, str(ctx), timeout=120, **kw)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def built_id(proc) -> str:
    return re.search(r"^Successfully built ([0-9a-f]{12})$", proc.stdout, re.M).group(1)


def inspect(berth, name) -> dict:
    return json.loads(berth("image", "inspect", name, check=True).stdout)[0]


def config_blob(berth, name) -> dict:
    image_id = inspect(berth, name)["Id"]
    return json.loads((berth.root / "blobs" / "sha256" / image_id.split(":")[1]).read_bytes())


def no_containers(berth) -> bool:
    return berth("ps", "-aq").stdout.split() == []


def run_out(berth, image, *cmd) -> str:
    return berth("run", "--rm", "--network", "none", image, *cmd, check=True).stdout


def layer_rows(berth) -> int:
    with sqlite3.connect(berth.root / "berth.db") as db:
        return db.execute("SELECT count(*) FROM layers").fetchone()[0]


def test_single_stage_output_files_config_and_history(berth, tmp_path):
    berth.image  # noqa: B018 - import busybox
    ctx = context(tmp_path, "FROM busybox\n"
                            "ENV A=1 B=\"two words\"\n"
                            "COPY a.txt /app/\n"
                            "WORKDIR /app\n"
                            "RUN echo ran $A && echo made > made.txt\n"
                            "CMD [\"cat\", \"a.txt\"]\n", {"a.txt": "hello\n"})
    proc = build(berth, ctx, "-t", "app:1", "-t", "other")
    lines = proc.stdout.splitlines()
    assert lines[0] == "Step 1/6 : FROM busybox" and re.fullmatch(r" ---> [0-9a-f]{12}", lines[1])
    assert "Step 5/6 : RUN echo ran $A && echo made > made.txt" in lines
    running = next(i for i, line in enumerate(lines) if line.startswith(" ---> Running in "))
    short = lines[running].split()[-1]
    assert lines[running + 1] == "ran 1" and lines[running + 2] == f"Removing intermediate container {short}"
    assert lines[-3].startswith("Successfully built ")
    assert lines[-2:] == ["Successfully tagged app:1", "Successfully tagged other:latest"]
    assert sum(1 for line in lines if line.startswith("Step ")) == 6
    assert no_containers(berth)
    assert run_out(berth, "app:1") == "hello\n"
    assert run_out(berth, "other", "cat", "/app/made.txt") == "made\n"
    cfg = inspect(berth, "app:1")["Config"]
    assert cfg["Env"] == [f"PATH={PATH}", "A=1", "B=two words"]  # PATH added at FROM, as Docker
    assert cfg["WorkingDir"] == "/app" and cfg["Cmd"] == ["cat", "a.txt"]
    history = config_blob(berth, "app:1")["history"]
    assert [h["created_by"] for h in history[1:]] == [
        "/bin/sh -c #(nop)  ENV A=1 B=two words",
        history[2]["created_by"],
        "/bin/sh -c #(nop)  WORKDIR /app",
        "/bin/sh -c echo ran $A && echo made > made.txt",
        '/bin/sh -c #(nop)  CMD ["cat" "a.txt"]',
    ]
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in /app/ ", history[2]["created_by"])
    # /app exists once COPY made it: WORKDIR only sets the config
    assert [bool(h.get("empty_layer")) for h in history[1:]] == [True, False, True, False, True]
    assert len(inspect(berth, "app:1")["RootFS"]["Layers"]) == 1 + 2  # base, COPY, RUN
    # the intermediate images are hidden from `images`, as Docker's
    assert berth("images", "--format", "{{.Repository}}").stdout.split() == ["app", "other", "busybox"]


def test_cache_hits_and_a_changed_file_invalidates_from_its_copy_on(berth, tmp_path):
    berth.image  # noqa: B018
    dockerfile = ("FROM busybox\nRUN echo first > /first\nCOPY one /one\nRUN cat /one > /copy\n"
                  "COPY two /two\nCMD [\"cat\", \"/copy\"]\n")
    ctx = context(tmp_path, dockerfile, {"one": "1", "two": "2"})
    first = build(berth, ctx, "-t", "c")
    again = build(berth, ctx, "-t", "c")
    assert again.stdout.count(" ---> Using cache") == 5 and "Running in" not in again.stdout
    assert built_id(again) == built_id(first)
    (ctx / "two").write_text("2 changed")  # only the last COPY and what follows it
    changed = build(berth, ctx)
    steps = changed.stdout.split("Step ")[1:]
    assert [(" ---> Using cache" in s) for s in steps] == [False, True, True, True, False, False]
    (ctx / "one").write_text("1 changed")
    (ctx / "two").write_text("2")
    changed = build(berth, ctx, "-t", "c")
    steps = changed.stdout.split("Step ")[1:]
    assert [(" ---> Using cache" in s) for s in steps] == [False, True, False, False, False, False]
    assert run_out(berth, "c") == "1 changed"
    os.chmod(ctx / "two", 0o600)  # metadata counts as well
    assert " ---> Using cache" not in build(berth, ctx).stdout.split("COPY two /two")[1]
    no_cache = build(berth, ctx, "--no-cache")
    assert "Using cache" not in no_cache.stdout and no_cache.stdout.count("Running in") == 2
    assert no_containers(berth)


def test_failing_run_leaves_nothing_behind(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nRUN echo about to fail\nRUN false\nCMD true\n")
    before = layer_rows(berth)
    proc = build(berth, ctx, "-t", "never", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "The command '/bin/sh -c false' returned a non-zero code: 1\n"
    assert "Step 3/4 : RUN false" in proc.stdout and "Step 4/4" not in proc.stdout
    assert no_containers(berth)
    assert berth("image", "inspect", "never").returncode == 1
    assert layer_rows(berth) == before + 1  # the first RUN's layer, kept as cache (as Docker); none for `false`
    proc = build(berth, context(tmp_path, 'FROM busybox\nRUN ["sh", "-c", "exit 3"]\n', name="c2"), check=False)
    assert proc.returncode == 1 and proc.stderr == "The command 'sh -c exit 3' returned a non-zero code: 3\n"
    assert no_containers(berth)


@pytest.mark.parametrize("dockerfile, files, message", [
    ("FROM busybox\nFOO bar\n", {}, "Error: dockerfile parse error line 2: unknown instruction: FOO\n"),
    ("RUN true\n", {}, "Error: No build stage in current context\n"),
    ("FROM busybox\nCOPY ../x /x\n", {}, "Error: COPY failed: forbidden path outside the build context: ../x ()\n"),
    ("FROM busybox\nCOPY nothere /x\n", {},
     "Error: COPY failed: file not found in build context or excluded by .dockerignore: stat nothere: file does not "
     "exist\n"),
    ("FROM busybox AS a\nCOPY --from=nostage /x /x\n", {}, "Error: invalid from flag value nostage: "),
    ("ARG BASE\nFROM ${BASE:?required}\n", {}, "Error: BASE: required\n"),
    ("ARG BASE\nFROM $BASE\n", {}, "Error: base name ($BASE) should not be blank\n"),
    ("FROM busybox\nRUN <<EOF\ntrue\nEOF\n", {}, "not supported by berth's classic builder\n"),
    ("FROM busybox\nRUN --mount=type=cache,target=/c true\n", {}, "not supported by berth's classic builder\n"),
])
def test_bad_input_is_one_line_and_nothing_is_left(berth, tmp_path, dockerfile, files, message):
    berth.image  # noqa: B018
    before = layer_rows(berth)
    proc = build(berth, context(tmp_path, dockerfile, files), check=False)
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert no_containers(berth) and layer_rows(berth) == before
    assert berth("images", "-aq").stdout.split() == [inspect(berth, "busybox")["Id"].split(":")[1][:12]]


def test_unknown_target_stage(berth, tmp_path):
    berth.image  # noqa: B018
    proc = build(berth, context(tmp_path, "FROM busybox AS one\n"), "--target", "two", check=False)
    assert proc.returncode == 1 and proc.stderr == "Error: failed to reach build target two in Dockerfile\n"


def test_symlink_out_of_the_context_is_copied_as_a_link(berth, tmp_path):
    berth.image  # noqa: B018
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    ctx = context(tmp_path, "FROM busybox\nCOPY link /link\nCOPY dir/ /d/\n", {"dir/inner": "i"})
    os.symlink(str(secret), ctx / "link")
    os.symlink(str(tmp_path), ctx / "dir" / "up")
    build(berth, ctx, "-t", "links")
    assert run_out(berth, "links", "readlink", "/link") == f"{secret}\n"
    assert run_out(berth, "links", "sh", "-c", "readlink /d/up; cat /d/inner") == f"{tmp_path}\ni"
    assert "host secret" not in run_out(berth, "links", "sh", "-c", "cat /link 2>&1; true")


def test_multi_stage_copy_from_and_target(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox AS builder\nRUN mkdir /out && echo artifact > /out/a && echo 2 > /out/b\n"
                            "FROM busybox AS middle\nRUN echo middle > /m\n"
                            "FROM scratch\nCOPY --from=builder /out/a /a\nCOPY --from=1 /m /m\n"
                            "COPY --from=busybox /bin/busybox /busybox\n")
    proc = build(berth, ctx, "-t", "final")
    assert proc.stdout.count("Step ") == 8
    image = inspect(berth, "final")
    assert len(image["RootFS"]["Layers"]) == 3  # from scratch: one layer per COPY
    out = tmp_path / "final.tar"
    berth("save", "-o", str(out), "final", check=True)
    assert no_containers(berth)
    proc = build(berth, ctx, "--target", "middle", "-t", "mid", "--label", "stage=middle")
    assert proc.stdout.count("Step ") == 5 and run_out(berth, "mid", "cat", "/m") == "middle\n"
    assert inspect(berth, "mid")["Config"]["Labels"] == {"stage": "middle"}
    proc = build(berth, ctx, "-t", "Bad:x", check=False)
    assert proc.returncode == 125 and proc.stderr.startswith('Error: invalid argument "Bad:x" for "-t, --tag" flag: ')


def test_build_args_arg_before_from_and_proxy_args(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "ARG BASE=busybox\nFROM $BASE\nARG BASE\nARG WHO=nobody\nARG UNSET\n"
                            "ENV GREETING=\"hello ${WHO}\" OTHER=${UNSET:-fallback} ALT=${WHO:+set}\n"
                            "RUN echo \"$GREETING from $BASE ($WHO) proxy=$http_proxy\" > /out\n"
                            "LABEL who=$WHO\n")
    proc = build(berth, ctx, "--build-arg", "WHO=me", "--build-arg", "http_proxy=http://127.0.0.1:9",
                 "--build-arg", "NOTUSED=1", "-t", "args")
    assert "[Warning] One or more build-args [NOTUSED] were not consumed" in proc.stdout
    assert run_out(berth, "args", "cat", "/out") == "hello me from busybox (me) proxy=http://127.0.0.1:9\n"
    cfg = inspect(berth, "args")["Config"]
    assert cfg["Env"] == [f"PATH={PATH}", "GREETING=hello me", "OTHER=fallback", "ALT=set"]
    assert cfg["Labels"] == {"who": "me"}
    history = [h["created_by"] for h in config_blob(berth, "args")["history"]]
    run = next(h for h in history if "echo" in h)
    assert run.startswith("|2 BASE=busybox WHO=me /bin/sh -c echo") and "http_proxy=" not in run
    assert "WHO" not in " ".join(cfg["Env"]).split("GREETING")[0]  # ARGs do not persist into the image's Env
    again = build(berth, ctx, "--build-arg", "WHO=you")
    assert "hello you" not in again.stdout  # RUN output is not shown on a hit ...
    assert again.stdout.split("RUN echo")[1].count("Using cache") == 0  # ... and a changed arg is a miss


def test_dockerignore(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nCOPY . /ctx/\n",
                  {".dockerignore": "**/*.log\nsecret\ndocs\n!docs/keep.md\n", "a.txt": "a", "x.log": "l",
                   "sub/y.log": "l", "sub/z.txt": "z", "secret": "s", "docs/keep.md": "k", "docs/drop.md": "d"})
    build(berth, ctx, "-t", "ign")
    listing = run_out(berth, "ign", "sh", "-c", "cd /ctx && find . -type f | sort").split()
    assert listing == ["./.dockerignore", "./Dockerfile", "./a.txt", "./docs/keep.md", "./sub/z.txt"]
    proc = build(berth, context(tmp_path, "FROM busybox\nCOPY secret /s\n", {".dockerignore": "secret\n",
                                                                              "secret": "s"}, name="c2"), check=False)
    assert proc.returncode == 1 and "excluded by .dockerignore: stat secret" in proc.stderr


def test_copy_chown_chmod_wildcards_and_add(berth, tmp_path):
    berth.image  # noqa: B018
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("pkg/one", b"1"), ("pkg/two", b"22")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid = len(data), 0o640, 7
            tar.addfile(info, io.BytesIO(data))
    ctx = context(tmp_path, "FROM busybox\nCOPY --chown=app:app --chmod=750 *.txt /dest/\n"
                            "COPY --chown=65534 one.txt /owned\nADD pkg.tar.gz /opt/\nCOPY pkg.tar.gz /raw/\n"
                            "COPY one.txt /bin\n",
                  {"one.txt": "1", "two.txt": "2", "other.md": "m", "pkg.tar.gz": archive.getvalue()})
    build(berth, ctx, "-t", "cp")
    out = run_out(berth, "cp", "sh", "-c", "stat -c '%n %u:%g %a' /dest/* /owned /opt/pkg/* /raw/pkg.tar.gz /bin/one.txt")
    assert out.splitlines() == ["/dest/one.txt 1000:1000 750", "/dest/two.txt 1000:1000 750",
                                "/owned 65534:65534 644", "/opt/pkg/one 7:0 640", "/opt/pkg/two 7:0 640",
                                "/raw/pkg.tar.gz 0:0 644", "/bin/one.txt 0:0 644"]
    assert run_out(berth, "cp", "ls", "/dest") == "one.txt\ntwo.txt\n"
    proc = build(berth, context(tmp_path, "FROM busybox\nCOPY *.txt /single\n", {"a.txt": "", "b.txt": ""},
                                name="c2"), check=False)
    assert proc.returncode == 1 and "the destination must be a directory and end with a /" in proc.stderr


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"fetched over http\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_add_from_a_url(berth, tmp_path):
    berth.image  # noqa: B018
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/files/hello.txt"
        build(berth, context(tmp_path, f"FROM busybox\nADD {url} /web/\nADD {url} /named\n"), "-t", "url")
        out = run_out(berth, "url", "sh", "-c", "cat /web/hello.txt /named; stat -c '%a %Y' /web/hello.txt")
        assert out == "fetched over http\nfetched over http\n600 1445412480\n"
    finally:
        server.shutdown()
        server.server_close()


def test_every_metadata_instruction(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nMAINTAINER someone <s@example.com>\nEXPOSE 80 443/udp\n"
                            "VOLUME /data /other\nVOLUME [\"/json\"]\nLABEL a=1 \"b c\"=\"d e\"\nUSER app\n"
                            "STOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD wget -q x\n"
                            "ONBUILD RUN echo triggered > /tmp/trigger\nSHELL [\"/bin/sh\", \"-ec\"]\n"
                            "ENTRYPOINT [\"/bin/echo\"]\nCMD [\"hi\"]\n")
    build(berth, ctx, "-t", "meta", "--label", "from.flag=yes")
    info = inspect(berth, "meta")
    cfg = info["Config"]
    assert info["Author"] == "someone <s@example.com>"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "443/udp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/other": {}, "/json": {}}
    assert cfg["Labels"] == {"a": "1", "b c": "d e", "from.flag": "yes"}
    assert cfg["User"] == "app" and cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q x"], "Interval": 5_000_000_000,
                                  "Timeout": 3_000_000_000, "Retries": 2}
    assert cfg["OnBuild"] == ["RUN echo triggered > /tmp/trigger"]
    assert cfg["Shell"] == ["/bin/sh", "-ec"] and cfg["Entrypoint"] == ["/bin/echo"] and cfg["Cmd"] == ["hi"]
    assert len(info["RootFS"]["Layers"]) == 1
    history = config_blob(berth, "meta")["history"]
    assert all(h.get("empty_layer") for h in history[1:])
    assert history[-1]["created_by"] == '/bin/sh -ec #(nop)  LABEL from.flag=yes'
    assert run_out(berth, "meta") == "hi\n"
    # the trigger runs in the child's build, and the child does not inherit it
    child = build(berth, context(tmp_path, "FROM meta\nUSER root\n", name="child"), "-t", "child")
    assert "# Executing 1 build trigger" in child.stdout
    assert inspect(berth, "child")["Config"]["OnBuild"] is None
    assert berth("run", "--rm", "--network", "none", "--entrypoint", "cat", "child", "/tmp/trigger",
                 check=True).stdout == "triggered\n"


def test_entrypoint_resets_an_inherited_cmd(berth, tmp_path):
    berth.image  # noqa: B018
    build(berth, context(tmp_path, "FROM busybox\nCMD [\"sh\"]\n"), "-t", "withcmd")
    build(berth, context(tmp_path, "FROM withcmd\nENTRYPOINT [\"echo\"]\n", name="c2"), "-t", "ep")
    cfg = inspect(berth, "ep")["Config"]
    assert cfg["Entrypoint"] == ["echo"] and cfg["Cmd"] is None


def test_quiet_iidfile_dockerfile_flag_and_stdin(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nCOPY a /a\n", {"a": "from ctx", "other.Dockerfile": "FROM busybox\nCOPY a /b\n"})
    iid = tmp_path / "iid"
    proc = build(berth, ctx, "-q", "--iidfile", str(iid))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", proc.stdout) and iid.read_text() == proc.stdout.strip()
    proc = build(berth, ctx, "-f", str(ctx / "other.Dockerfile"), "-t", "f")
    assert run_out(berth, "f", "cat", "/b") == "from ctx"
    # a context tar on stdin
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        t.add(ctx, arcname=".")
    proc = berth("build", "--network", "none", "-t", "fromtar", "-", input=tar.getvalue(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert run_out(berth, "fromtar", "cat", "/a") == "from ctx"
    import bz2
    import gzip
    import lzma

    for compress in (gzip.compress, bz2.compress, lzma.compress):  # compressed contexts, as Docker takes them
        proc = berth("build", "--network", "none", "-q", "-", input=compress(tar.getvalue()), timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith(b"sha256:"), (compress, proc.stderr)
    # a Dockerfile alone on stdin
    proc = berth("build", "--network", "none", "-t", "alone", "-", input=b"FROM busybox\nRUN echo alone > /x\n",
                 timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert run_out(berth, "alone", "cat", "/x") == "alone\n"
    # -f - : the Dockerfile from stdin, the directory as the context
    proc = berth("build", "--network", "none", "-t", "dash", "-f", "-", str(ctx), input="FROM busybox\nCOPY a /c\n",
                 timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert run_out(berth, "dash", "cat", "/c") == "from ctx"
    assert no_containers(berth)


def test_run_uses_the_default_bridge(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nRUN ip -4 addr show eth0 | grep -o 'inet [0-9.]*' > /addr\n")
    proc = berth("build", "-t", "net", str(ctx), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert run_out(berth, "net", "cat", "/addr").startswith(f"inet {berth.subnet}.")
    assert no_containers(berth)


def test_keep_intermediate_containers_with_no_rm(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nRUN true\n")
    proc = build(berth, ctx, "--rm=false")  # Docker's spelling; --no-rm is the same
    assert "Removing intermediate container" not in proc.stdout
    assert len(berth("ps", "-aq").stdout.split()) == 1


# -- interop: podman runs what berth builds, and builds the same thing ---------------------------------

INTEROP_DOCKERFILE = """FROM busybox
ENV A=1 B="two words"
COPY a.txt /app/
COPY sub /app/sub
COPY link /app/
COPY --chown=app:app --chmod=640 a.txt /home/app/owned
ADD pkg.tar /opt/
WORKDIR /app
RUN echo made > made.txt && mkdir -p /var/x && chmod 700 /var/x && rm /bin/vi
USER app
EXPOSE 80 53/udp
VOLUME /data
LABEL k=v
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat a.txt"]
"""


def flatten(archive: Path) -> tuple[dict, dict]:
    """(the image's root filesystem as path -> what it is, its config) from a docker-archive."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        tree: dict[str, tuple] = {}
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                for m in inner:
                    name = m.name.strip("./").rstrip("/")
                    head, _, base = name.rpartition("/")
                    if base == ".wh..wh..opq":
                        tree = {k: v for k, v in tree.items() if not k.startswith(head + "/")}
                    elif base.startswith(".wh."):
                        gone = (head + "/" if head else "") + base[4:]
                        tree = {k: v for k, v in tree.items() if k != gone and not k.startswith(gone + "/")}
                    elif name:
                        data = inner.extractfile(m).read() if m.isfile() else b""
                        kind = "dir" if m.isdir() else "link" if m.issym() else "hard" if m.islnk() else "file"
                        tree[name] = (kind, m.mode & 0o7777, m.uid, m.gid, m.linkname, data)
    return tree, config


ULIMITS = ["--ulimit", "nproc=4096:4096", "--ulimit", "nofile=1024:1024"]  # what this host lets podman set


def podman_cmd(base: Path) -> list[str]:
    return ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--root", str(base / "root"),
            "--runroot", str(base / "run"), "--storage-driver", "vfs", "--events-backend", "file"]


def test_podman_runs_it_skopeo_sees_it_and_podman_builds_the_same(berth, tmp_path):
    import shutil
    import subprocess
    import tempfile

    berth.image  # noqa: B018
    pkg = io.BytesIO()
    with tarfile.open(fileobj=pkg, mode="w") as tar:
        info = tarfile.TarInfo("pkg/tool")
        info.size, info.mode = 4, 0o755
        tar.addfile(info, io.BytesIO(b"tool"))
    ctx = context(tmp_path, INTEROP_DOCKERFILE, {"a.txt": "hello\n", "sub/b": "x\n", "pkg.tar": pkg.getvalue()})
    os.symlink("a.txt", ctx / "link")
    build(berth, ctx, "-t", "interop:1")
    saved = tmp_path / "berth.tar"
    berth("save", "-o", str(saved), "interop:1", check=True)
    layers = inspect(berth, "interop:1")["RootFS"]["Layers"]
    sk = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{saved}"], capture_output=True, text=True,
                                   check=True).stdout)
    assert sk["Layers"] == layers and len(layers) == 1 + 6  # busybox, 4 COPY, ADD, RUN (/app exists: no WORKDIR layer)
    base = Path(tempfile.mkdtemp(prefix="bt-pm-"))  # podman wants a short runroot
    podman = podman_cmd(base)
    try:
        loaded = subprocess.run(podman + ["load", "-i", str(saved)], capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        ran = subprocess.run(podman + ["run", "--rm", "--network", "none", *ULIMITS, "interop:1"], capture_output=True,
                             text=True, timeout=120)
        assert ran.returncode == 0 and ran.stdout == "hello\n", ran.stderr
        subprocess.run(podman + ["import", str(berth.rootfs), "busybox"], capture_output=True, check=True)
        built = subprocess.run(podman + ["build", "--format", "docker", "--network", "none", *ULIMITS, "-t", "pbuilt",
                                         str(ctx)], capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stderr
        theirs_tar = tmp_path / "podman.tar"
        saved_by_podman = subprocess.run(podman + ["save", "--format", "docker-archive", "-o", str(theirs_tar),
                                                   "localhost/pbuilt:latest"], capture_output=True, text=True)
        assert saved_by_podman.returncode == 0, saved_by_podman.stderr
    finally:
        subprocess.run(podman + ["system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
    ours, our_config = flatten(saved)
    theirs, their_config = flatten(theirs_tar)
    for leftover in ("etc/hostname", "run"):  # what podman's RUN leaves in its layer (Docker's does not)
        theirs.pop(leftover, None)
    differ = sorted(p for p in set(ours) | set(theirs) if ours.get(p) != theirs.get(p))
    assert differ == [], [(p, ours.get(p, "missing")[:5], theirs.get(p, "missing")[:5]) for p in differ]
    assert "bin/vi" not in ours and ours["var/x"][:2] == ("dir", 0o700)
    assert ours["app/link"][0] == "file"  # a link inside the context is followed, as Docker and podman do
    keys = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "Healthcheck",
            "StopSignal")
    mine = {k: our_config["config"].get(k) for k in keys}
    other = {k: their_config["config"].get(k) for k in keys}
    other["Labels"] = {k: v for k, v in (other["Labels"] or {}).items() if k != "io.buildah.version"}
    assert mine == other


def test_rmi_takes_the_build_intermediate_images_with_it(berth, tmp_path):
    berth.image  # noqa: B018
    base_id = inspect(berth, "busybox")["Id"]
    ctx = context(tmp_path, "FROM busybox\nENV A=1\nRUN echo x > /x\nCMD [\"sh\"]\n")
    build(berth, ctx, "-t", "first")
    build(berth, context(tmp_path, "FROM busybox\nENV A=1\nRUN echo x > /x\nLABEL second=1\n", name="c2"),
          "-t", "second")  # shares the ENV and RUN steps with first
    assert len(berth("images", "-aq").stdout.split()) == 1 + 3 + 1
    out = berth("rmi", "first", check=True).stdout.splitlines()
    assert out[0] == "Untagged: first:latest" and len([x for x in out if x.startswith("Deleted: ")]) >= 1
    # the shared steps stay (second needs them); first's own CMD image is gone
    assert len(berth("images", "-aq").stdout.split()) == 1 + 3
    berth("rmi", "second", check=True)
    assert berth("images", "-aq", "--no-trunc").stdout.split() == [base_id]
    assert berth("images", "--filter", "dangling=true", "-q").stdout == ""


def test_from_pulls_a_missing_base_and_pull_refreshes_it(berth, tmp_path, registry_open):
    base = f"{registry_open.location}/build/base:1"
    berth("tag", berth.image, base, check=True)
    berth("push", base, check=True)
    berth("rmi", base, check=True)
    ctx = context(tmp_path, f"FROM {base}\nRUN cat /version 2>/dev/null || echo none > /version\n")
    build(berth, ctx, "-t", "pulled")  # the base is pulled since it is missing
    assert run_out(berth, "pulled", "cat", "/version") == "none\n"
    # a newer base in the registry: a build without --pull keeps the local one, --pull takes the new one
    build(berth, context(tmp_path, "FROM busybox\nRUN echo 2 > /version\n", name="v2"), "-t", base)
    berth("push", base, check=True)
    berth("tag", berth.image, base, check=True)  # locally, the base is the old one again
    cached = build(berth, ctx, "-t", "still")
    assert run_out(berth, "still", "cat", "/version") == "none\n" and "Using cache" in cached.stdout
    refreshed = build(berth, ctx, "--pull", "-t", "fresh")
    assert "Using cache" not in refreshed.stdout.split("RUN")[1]
    assert run_out(berth, "fresh", "cat", "/version") == "2\n"
    assert no_containers(berth)


def test_force_rm_removes_the_failed_step_container_even_with_no_rm(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nRUN false\n")
    assert build(berth, ctx, "--no-rm", check=False).returncode == 1
    assert len(berth("ps", "-aq").stdout.split()) == 1  # kept, as asked
    berth("rm", "-f", *berth("ps", "-aq").stdout.split(), check=True)
    assert build(berth, ctx, "--no-rm", "--force-rm", check=False).returncode == 1
    assert no_containers(berth)


def test_what_run_writes_under_a_volume_is_discarded(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nRUN mkdir /data && echo before > /data/kept\nVOLUME /data\n"
                            "RUN echo after > /data/lost && echo elsewhere > /kept\n")
    build(berth, ctx, "-t", "vol")
    assert run_out(berth, "vol", "sh", "-c", "ls /data; cat /kept") == "kept\nelsewhere\n"


def test_an_empty_entrypoint_flag_resets_the_image_entrypoint(berth, tmp_path):
    berth.image  # noqa: B018
    build(berth, context(tmp_path, "FROM busybox\nENTRYPOINT [\"/bin/false\"]\n"), "-t", "ep")
    assert berth("run", "--rm", "--network", "none", "--entrypoint", "", "ep", "echo", "reset",
                 check=True).stdout == "reset\n"


class _Stalls(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.wfile.flush()
        self.server.stalled.wait(30)

    def log_message(self, *args):
        pass


def test_what_a_killed_build_left_is_reaped_by_the_next(berth, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    berth.image  # noqa: B018
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stalls)
    server.stalled = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # a view of an image (a writable layer in the storage driver) as a killed build leaves it
    code = ("import sys; from berth.core import config; from berth.core.engine import Engine; "
            "from berth.core.build.layer import ImageRoot; e = Engine(config.load({'engine': {'root': sys.argv[1], "
            "'runroot': sys.argv[2]}})); v = ImageRoot(e, e.images.get('busybox')); print(v.__enter__()); "
            "print(v.view_id, flush=True); import os; os._exit(0)")
    made = subprocess.run([sys.executable, "-c", code, str(berth.root), str(berth.runroot)], env=berth.env,
                          capture_output=True, text=True, check=True).stdout.split()
    view_id = made[1]
    try:
        ctx = context(tmp_path, f"FROM busybox\nADD http://127.0.0.1:{server.server_address[1]}/big /big\n")
        proc = berth.popen("build", "--network", "none", str(ctx), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not [p for p in os.listdir(berth.root) if p.startswith(".build-") and "view" not in p]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        server.stalled.set()
        server.shutdown()
        server.server_close()
    left = [p for p in os.listdir(berth.root) if p.startswith(".build-")]
    assert len(left) == 2 and os.path.isdir(berth.root / "overlay2" / view_id)
    for name in left:  # older than the grace a new directory gets before its maker locks it
        os.utime(berth.root / name, (time.time() - 120,) * 2)
    build(berth, context(tmp_path, "FROM busybox\nRUN true\n", name="next"))
    assert [p for p in os.listdir(berth.root) if p.startswith(".build-")] == []
    assert not os.path.exists(berth.root / "overlay2" / view_id)
    assert view_id not in open("/proc/mounts").read()


def test_a_very_deep_context_is_copied(berth, tmp_path):
    berth.image  # noqa: B018
    ctx = context(tmp_path, "FROM busybox\nCOPY deep /deep\n")
    fd = os.open(ctx, os.O_RDONLY)
    try:  # 1100 levels: deeper than Python's recursion limit, and than PATH_MAX
        for name in ["deep"] + ["d"] * 1100:
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"bottom")
        os.close(leaf)
    finally:
        os.close(fd)
    try:
        build(berth, ctx, "-t", "deep")
        depth = run_out(berth, "deep", "sh", "-c", "cd /deep && n=0; while [ -d d ]; do cd d; n=$((n+1)); done; "
                                                   "echo $n $(cat leaf)")
        assert depth == "1100 bottom\n"
        berth("rmi", "deep", check=True)
    finally:  # pytest's own clean-up of tmp_path recurses: it would fail on this tree, in every later session
        from berth.core.driverkit import remove_tree

        remove_tree(ctx / "deep")
