"""Docker's classic builder on berth's own containers and layers.

    from berth.core.build import BuildOptions, Context, build
    with Context.from_directory(".") as ctx:
        image = build(engine, ctx, BuildOptions(tags=["app:1"]), out=sys.stdout.write)

`out` receives the progress text as Docker's classic builder prints it
(`Step N/M : ...`, ` ---> ID`, a RUN's own output, `Successfully built ID`);
errors are raised (BuildFailed for a RUN that failed, DockerfileError for
the rest). The CLI's `berth build` and the Engine API's POST /build both
call `build`.

Every instruction makes an image whose parent is the image before it: a
layer for RUN (a real berth container, removed afterwards), COPY, ADD and a
WORKDIR that creates its directory; only a new config and an `empty_layer`
history entry for the others. Those intermediate images are the cache: an
instruction is skipped (` ---> Using cache`) when a child of the current
image was made by the same instruction text (`container_config.Cmd`, as
Docker keeps it), which for COPY and ADD names a hash of the files'
content and metadata, and for RUN the build args it saw.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable

from berth.core.build.context import Context
from berth.core.build.layer import ImageRoot, dir_entries, write_layer_blob
from berth.core.build.parser import DockerfileError, Instruction, Lexer, parse, parse_instruction
from berth.core.errors import BerthError, ExitCode, InvalidArgument, NotFound
from berth.core.plumbing.records import Record
from berth.core.plumbing.units import now_iso

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
NOP = "#(nop) "


class BuildFailed(ExitCode):
    """A RUN returned non-zero: Docker's own line, exit 1."""

    def __init__(self, message: str):
        super().__init__(message, 1)


class BuildOptions(Record):
    """What `docker build` takes: tags (-t), build_args (--build-arg K=V; V None: from the
    environment), target, no_cache, pull, labels, network (RUN's), remove (--rm, default)
    and force_remove (--force-rm)."""

    FIELDS = {"tags": [], "build_args": {}, "target": None, "no_cache": False, "pull": False, "labels": {},
              "network": None, "remove": True, "force_remove": False}


def build(engine, context: Context, options: BuildOptions, out: Callable[[str], object]):
    """Build `context` with `options`; return the final Image (tagged)."""
    return Builder(engine, context, options, out).run()


class _Stage:
    """What the instructions of one stage change: the image so far and its config."""

    def __init__(self, index: int, name: str | None):
        self.index, self.name = index, name
        self.image = None  # berth Image, None for scratch
        self.config: dict = {}  # the image config's "config" object
        self.meta: dict = {}  # the rest of the image config (history, rootfs, author ...)
        self.args: dict[str, str | None] = {}  # ARGs declared in this stage
        self.cmd_set = False

    @property
    def env(self) -> dict[str, str]:
        """What an instruction's words expand against: the ARGs, then ENV over them."""
        env = {k: v for k, v in self.args.items() if v is not None}
        for item in self.config.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


class Builder:
    def __init__(self, engine, context: Context, options: BuildOptions, out: Callable[[str], object]):
        self.engine, self.context, self.options, self.write = engine, context, options, out
        self.stages: list[_Stage] = []
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        self.lexer = Lexer()

    def out(self, text: str) -> None:
        self.write(text + "\n")

    # -- the build ----------------------------------------------------------------------

    def run(self):
        from berth.core.build.scratch import reap
        from berth.core.oci import reference as refs

        reap(self.engine)  # what killed builds left behind

        tags = []
        for tag in self.options.tags:
            try:
                ref = refs.parse(tag)
                if ref.digest:
                    raise InvalidArgument("refusing to create a tag with a digest reference")
            except InvalidArgument as exc:
                raise InvalidArgument(f"invalid argument \"{tag}\" for \"-t, --tag\" flag: {exc}") from None
            tags.append(ref)
        dockerfile = parse(self.context.dockerfile)
        self.lexer = Lexer(dockerfile.escape)
        stages = dockerfile.stages()
        if self.options.target:
            names = [s.name for s in stages]
            target = self.options.target.lower()
            if target not in names:
                raise DockerfileError(f"failed to reach build target {self.options.target} in Dockerfile")
            stages = stages[:names.index(target) + 1]
        if self.options.labels:  # --label: a LABEL step at the end of the stage built
            text = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in self.options.labels.items())
            stages[-1].instructions.append(parse_instruction(text, 0))
        meta = dockerfile.meta_args()
        self.total = len(meta) + sum(1 + len(s.instructions) for s in stages)
        for inst in meta:
            self.begin(inst)
            for name, default in inst.pairs:
                self.meta_args[name] = self.arg_value(name, default, dict(self._meta_env()))
        for parsed in stages:
            stage = _Stage(parsed.index, parsed.name)
            self.stages.append(stage)
            self.begin(parsed.from_)
            self.dispatch_from(stage, parsed)
            for inst in parsed.instructions:
                self.begin(inst)
                self.dispatch(stage, inst)
        unused = sorted(k for k in self.options.build_args
                        if k not in self.used_args and k not in self.meta_args and k not in PROXY_ARGS)
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        final = self.stages[-1].image
        if final is None:
            raise DockerfileError("No image was generated. Is your Dockerfile empty?")
        self.out(f"Successfully built {final.short_id}")
        for ref in tags:
            self.engine.images.tag(final.id, str(ref))
            self.out(f"Successfully tagged {ref.familiar}")
        return self.engine.images.get(final.id)

    def begin(self, inst: Instruction) -> None:
        self.step += 1
        self.out(f"Step {self.step}/{self.total} : {inst.original}")

    def _meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta_args.items() if v is not None}

    def arg_value(self, name: str, default: str | None, env: dict[str, str]) -> str | None:
        if name in self.options.build_args:
            self.used_args.add(name)
            value = self.options.build_args[name]
            return value if value is not None else os.environ.get(name)
        return self.lexer.word(default, env) if default is not None else None

    # -- FROM ----------------------------------------------------------------------------

    def dispatch_from(self, stage: _Stage, parsed) -> None:
        name = self.lexer.word(parsed.base, self._meta_env())
        if not name:
            raise DockerfileError(f"base name ({parsed.base}) should not be blank")
        earlier = self._stage_named(name, stage.index)
        if earlier is not None:
            image = earlier.image
        elif name.lower() == "scratch":
            image = None
        else:
            image = self.image_named(name, pull=self.options.pull)
        self._set_image(stage, image)
        env = stage.config.get("Env") or []
        if not any(item.startswith("PATH=") for item in env):  # as Docker's dispatchFrom
            stage.config["Env"] = list(env) + ["PATH=" + DEFAULT_PATH]
        if image is not None:
            self.out(f" ---> {image.short_id}")
        triggers = list(stage.config.get("OnBuild") or [])
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            stage.config["OnBuild"] = None
            for text in triggers:
                self.dispatch(stage, parse_instruction(text, 0, self.lexer.escape))

    def _stage_named(self, name: str, before: int) -> _Stage | None:
        for stage in self.stages[:before]:
            if stage.name == name.lower():
                return stage
        return None

    def image_named(self, name: str, pull: bool = False):
        """A base image: the local one, else (or always with --pull) pulled."""
        from berth.core.images import transfer

        if not pull:
            try:
                return self.engine.images.get(name)
            except NotFound:
                pass
        try:
            return transfer.pull(self.engine, name)[0].image
        except BerthError as exc:  # a build that cannot get its base fails as a build does: exit 1
            raise DockerfileError(exc.message) from None

    def _set_image(self, stage: _Stage, image) -> None:
        import copy

        stage.image = image
        if image is None:
            stage.config, stage.meta = {}, {"history": []}
            return
        full = copy.deepcopy(image.config)
        stage.config = full.pop("config", None) or {}
        stage.meta = full

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self, stage: _Stage, inst: Instruction) -> None:
        handler = getattr(self, "do_" + inst.cmd.lower())
        handler(stage, inst)
        if stage.image is not None:
            self.out(f" ---> {stage.image.short_id}")

    def word(self, stage: _Stage, text: str) -> str:
        return self.lexer.word(text, stage.env)

    def do_env(self, stage: _Stage, inst: Instruction) -> None:
        env = list(stage.config.get("Env") or [])
        parts = []
        for key, value in inst.pairs:
            key, value = self.word(stage, key), self.word(stage, value)
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            stage.config["Env"] = env  # later pairs of one ENV see the earlier ones
            parts.append(f"{key}={value}")
        self.commit_config(stage, "ENV " + " ".join(parts))

    def do_label(self, stage: _Stage, inst: Instruction) -> None:
        labels = dict(stage.config.get("Labels") or {})
        parts = []
        for key, value in inst.pairs:
            key, value = self.word(stage, key), self.word(stage, value)
            labels[key] = value
            parts.append(f"{key}={value}")
        stage.config["Labels"] = labels
        self.commit_config(stage, "LABEL " + " ".join(parts))

    def do_maintainer(self, stage: _Stage, inst: Instruction) -> None:
        stage.meta["author"] = inst.args
        self.commit_config(stage, "MAINTAINER " + inst.args)

    def do_arg(self, stage: _Stage, inst: Instruction) -> None:
        parts = []
        for name, default in inst.pairs:
            if name in self.options.build_args:
                value = self.arg_value(name, None, {})
            elif default is not None:
                value = self.word(stage, default)
            else:  # a bare ARG takes the value of the ARG of that name before the first FROM
                value = self.meta_args.get(name)
            stage.args[name] = value
            parts.append(name if default is None else f"{name}={default}")
        self.commit_config(stage, "ARG " + " ".join(parts))

    def do_workdir(self, stage: _Stage, inst: Instruction) -> None:
        path = self.word(stage, inst.args)
        path = posixpath.normpath(posixpath.join(stage.config.get("WorkingDir") or "/", path))
        stage.config["WorkingDir"] = path
        text = f"WORKDIR {path}"
        cache_cmd = stage.shell + [NOP, text]
        if self.cached(stage, cache_cmd):
            return
        with ImageRoot(self.engine, stage.image) as root:
            entries = dir_entries(root, path)
        if entries:  # the directory is new: a layer that makes it
            self.commit_layer(stage, entries, created_by=self.nop(stage, text), cache_cmd=cache_cmd)
        else:
            self.commit(stage, None, self.nop(stage, text), cache_cmd, empty=True)

    def do_user(self, stage: _Stage, inst: Instruction) -> None:
        stage.config["User"] = self.word(stage, inst.args)
        self.commit_config(stage, "USER " + stage.config["User"])

    def do_expose(self, stage: _Stage, inst: Instruction) -> None:
        from berth.core.networks.ports import parse_expose

        words = [w for word in inst.words for w in self.lexer.words(word, stage.env)]
        try:
            ports = parse_expose(words)
        except InvalidArgument as exc:
            raise DockerfileError(str(exc)) from None
        exposed = dict(stage.config.get("ExposedPorts") or {})
        exposed.update(ports)
        stage.config["ExposedPorts"] = exposed
        self.commit_config(stage, "EXPOSE " + " ".join(ports))

    def do_volume(self, stage: _Stage, inst: Instruction) -> None:
        paths = [self.word(stage, w) for w in inst.words]
        volumes = dict(stage.config.get("Volumes") or {})
        for path in paths:
            if not path.strip():
                raise DockerfileError("VOLUME specified can not be an empty string")
            volumes[path] = {}
        stage.config["Volumes"] = volumes
        self.commit_config(stage, f"VOLUME [{' '.join(paths)}]")

    def do_stopsignal(self, stage: _Stage, inst: Instruction) -> None:
        from berth.core.containers.container import signal_number

        sig = self.word(stage, inst.args)
        try:
            signal_number(sig)
        except BerthError as exc:
            raise DockerfileError(str(exc)) from None
        stage.config["StopSignal"] = sig
        self.commit_config(stage, "STOPSIGNAL " + sig)

    def _command(self, stage: _Stage, inst: Instruction) -> list[str]:
        return list(inst.words) if inst.json else stage.shell + [inst.args]

    def do_cmd(self, stage: _Stage, inst: Instruction) -> None:
        stage.config["Cmd"] = self._command(stage, inst)
        stage.cmd_set = True
        self.commit_config(stage, "CMD " + _go_quote(stage.config["Cmd"]))

    def do_entrypoint(self, stage: _Stage, inst: Instruction) -> None:
        stage.config["Entrypoint"] = self._command(stage, inst) if inst.args.strip() else None
        if not stage.cmd_set:
            stage.config["Cmd"] = None  # a CMD inherited from the base does not follow a new ENTRYPOINT
        self.commit_config(stage, "ENTRYPOINT " + _go_quote(stage.config["Entrypoint"] or []))

    def do_shell(self, stage: _Stage, inst: Instruction) -> None:
        if not inst.words:
            raise DockerfileError("SHELL requires at least one argument")
        stage.config["Shell"] = list(inst.words)
        self.commit_config(stage, f"SHELL [{' '.join(inst.words)}]")

    def do_onbuild(self, stage: _Stage, inst: Instruction) -> None:
        trigger = inst.args.strip()
        word, _, rest = trigger.partition(" ")
        trigger = word.upper() + (" " + rest if rest else "")
        stage.config["OnBuild"] = list(stage.config.get("OnBuild") or []) + [trigger]
        self.commit_config(stage, "ONBUILD " + trigger)

    def do_healthcheck(self, stage: _Stage, inst: Instruction) -> None:
        if inst.words == ["NONE"]:
            check = {"Test": ["NONE"]}
        else:
            check = {"Test": list(inst.words)}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in inst.flags:
                    value = _duration(inst.flags[flag], flag)
                    if value:
                        check[key] = value
            if "retries" in inst.flags:
                try:
                    retries = int(inst.flags["retries"])
                except ValueError:
                    raise DockerfileError(f"invalid retries value: {inst.flags['retries']}") from None
                if retries < 0:
                    raise DockerfileError("--retries cannot be negative")
                if retries:
                    check["Retries"] = retries
        stage.config["Healthcheck"] = check
        self.commit_config(stage, "HEALTHCHECK " + _healthcheck_text(check))

    # -- RUN ------------------------------------------------------------------------------

    def do_run(self, stage: _Stage, inst: Instruction) -> None:
        cmd = self._command(stage, inst)
        args = sorted((k, v) for k, v in stage.args.items() if v is not None and k not in PROXY_ARGS)
        proxies = [(k, v) for k, v in self.options.build_args.items() if k in PROXY_ARGS and v is not None]
        pairs = [f"{k}={v}" for k, v in args]
        cache_cmd = ([f"|{len(pairs)}"] + pairs if pairs else []) + cmd
        created_by = " ".join(cache_cmd)
        if self.cached(stage, cache_cmd):
            return
        from berth.core.build.run import run_step

        run_step(self, stage, cmd, pairs + [f"{k}={v}" for k, v in proxies], created_by, cache_cmd)

    # -- COPY / ADD --------------------------------------------------------------------------

    def do_copy(self, stage: _Stage, inst: Instruction) -> None:
        self._copy(stage, inst, add=False)

    def do_add(self, stage: _Stage, inst: Instruction) -> None:
        self._copy(stage, inst, add=True)

    def _copy(self, stage: _Stage, inst: Instruction, add: bool) -> None:
        from berth.core.build import copying

        words = [self.word(stage, w) for w in inst.words]
        flags = {k: self.word(stage, v) for k, v in inst.flags.items()}
        sources, dest = words[:-1], words[-1]
        workdir = stage.config.get("WorkingDir") or "/"
        if not dest.startswith("/"):
            trailing = dest.endswith("/") or dest in (".", "")
            dest = posixpath.join(workdir, dest) + ("/" if trailing else "")
        plan = copying.plan(self, stage, inst.cmd, sources, dest, flags, add=add)
        try:
            created_by = f"/bin/sh -c {NOP}{inst.cmd} {plan.digest} in {dest} "
            cache_cmd = stage.shell + [NOP, f"{inst.cmd} {plan.digest} in {dest} "] + \
                [f"--{k}={v}" for k, v in sorted(flags.items()) if k != "from"]
            if self.cached(stage, cache_cmd):
                return
            with ImageRoot(self.engine, stage.image) as root:
                entries = copying.copy_entries(root, plan)
            self.commit_layer(stage, entries, created_by=created_by, cache_cmd=cache_cmd)
        finally:
            plan.close()

    # -- commits and the cache ----------------------------------------------------------------

    def nop(self, stage: _Stage, text: str, spaces: int = 2) -> str:
        return " ".join(stage.shell) + " " + NOP + " " * (spaces - 1) + text

    def cached(self, stage: _Stage, cache_cmd: list[str]) -> bool:
        """Look for a child of the current image made by the same instruction (its
        container_config.Cmd is `cache_cmd`); take it if found."""
        if self.options.no_cache:
            return False
        parent = stage.image.id if stage.image is not None else None
        for child in self.engine.images.children(parent):
            try:
                image = self.engine.images.get(child)
            except NotFound:
                continue
            if (image.config.get("container_config") or {}).get("Cmd") == cache_cmd and not image.problems:
                self.out(" ---> Using cache")
                self._set_image(stage, image)
                return True
        return False

    def commit_config(self, stage: _Stage, text: str) -> None:
        """A metadata instruction: the cache, else a new image with the same layers."""
        cache_cmd = stage.shell + [NOP, text]
        if self.cached(stage, cache_cmd):
            return
        self.commit(stage, None, self.nop(stage, text), cache_cmd, empty=True)

    def commit_layer(self, stage: _Stage, entries, *, created_by: str, cache_cmd: list[str]) -> None:
        self.commit(stage, lambda: write_layer_blob(self.engine, entries), created_by, cache_cmd, empty=False)

    def commit(self, stage: _Stage, make_layer, created_by: str, cache_cmd: list[str], *, empty: bool) -> None:
        """A new image: the stage's config over its layers, plus the layer `make_layer()` writes (if any)."""
        with self.engine.lock("gc", shared=True):  # new blobs are unreferenced until the image row lands
            self._commit(stage, make_layer() if make_layer else None, created_by, cache_cmd, empty)

    def _commit(self, stage: _Stage, layer, created_by: str, cache_cmd: list[str], empty: bool) -> None:
        from berth.core.images.image import Layer
        from berth.core.oci.platform import arch

        base = stage.image
        layers = []
        diff_ids = []
        if base is not None:
            layers = [Layer(l["digest"], l["size"], l["mediaType"], d)
                      for l, d in zip(base.manifest.get("layers", []), base.diff_ids)]
            diff_ids = list(base.diff_ids)
        if layer is not None:
            layers.append(layer)
            diff_ids.append(layer.diff_id)
        created = now_iso()
        entry = {"created": created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        history = list(stage.meta.get("history") or [])
        history.append(entry)
        config = {key: value for key, value in stage.meta.items() if key not in ("history", "rootfs")}
        config.update({
            "architecture": stage.meta.get("architecture") or arch(),
            "os": stage.meta.get("os") or "linux",
            "created": created,
            "config": {k: v for k, v in stage.config.items() if v is not None or k in ("Cmd", "Entrypoint")},
            "container_config": {"Cmd": cache_cmd},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        })
        config.pop("container", None)
        data = json.dumps(config, separators=(",", ":")).encode()
        image = self.engine.images.register(data, layers, parent=base.id if base is not None else None,
                                            action="build")
        self._set_image(stage, image)


# -- formats of the history -------------------------------------------------------------------


def _go_quote(words: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(w, ensure_ascii=False) for w in words) + "]"


def _duration(text: str, flag: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    from berth.core.plumbing.units import parse_duration

    try:
        total = parse_duration(text or "0")
    except ValueError as exc:
        raise DockerfileError(str(exc)) from None
    if total < 1_000_000 and total != 0:
        raise DockerfileError(f"Interval \"{flag}\" cannot be less than 1ms")
    return total


def _go_duration(ns: int) -> str:
    if not ns:
        return "0s"
    seconds = ns / 1e9
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + (f"{secs:g}s")


def _healthcheck_text(check: dict) -> str:
    """As Docker's %q of the HealthConfig: &{["CMD-SHELL" "x"] "30s" "0s" "0s" "0s" '\\x00'}."""
    durations = " ".join(f'"{_go_duration(check.get(k, 0))}"' for k in ("Interval", "Timeout", "StartPeriod",
                                                                         "StartInterval"))
    return f"&{{{_go_quote(check['Test'])} {durations} '\\x{check.get('Retries', 0):02x}'}}"
