"""RUN: the command in a real berth container, its output streamed, its layer committed.

The container is made from the current image with the instruction's
command (no entrypoint), the build args in its environment and the
build's network (the default network unless --network). Its writable layer
becomes the step's layer; the container is removed afterwards (--rm, the
default, or --force-rm), failed or not.
"""

from __future__ import annotations

import os
import threading

from berth.core.build.parser import DockerfileError
from berth.core.errors import BerthError


def run_step(builder, stage, cmd: list[str], env: list[str], created_by: str, cache_cmd: list[str]) -> None:
    from berth.core.build.builder import BuildFailed
    from berth.core.containers.container import CreateOptions
    from berth.core.runtime.errors import StartError

    engine = builder.engine
    if stage.image is None:
        raise DockerfileError(f"The command '{' '.join(cmd)}' cannot run in an image without files (FROM scratch)")
    opts = CreateOptions(image=stage.image.id, command=cmd, entrypoint=[], env=env, network=builder.options.network,
                         log_driver="none", attach=["STDOUT", "STDERR"])
    container = engine.containers.create(opts, stage.image)
    builder.out(f" ---> Running in {container.short_id}")
    try:
        try:
            engine.containers.start(container, attach_wait=True)
        except StartError as exc:
            raise BuildFailed(f"The command '{' '.join(cmd)}' returned a non-zero code: {exc.exit_code}: "
                              f"{exc.message}") from None
        code = _stream(engine, container, builder.write)
        if code is None:
            after = engine.containers.wait_exit(container)
            code = int(after.state.get("ExitCode") or 0) if after is not None else 0
        if code != 0:
            raise BuildFailed(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}")
        # what a RUN writes under a declared VOLUME is discarded, as Docker's anonymous volumes do
        volumes = tuple(stage.config.get("Volumes") or {})
        builder.commit(stage, lambda: engine.containers.export_layer(container, volumes), created_by, cache_cmd,
                       empty=False)
    finally:
        if builder.options.remove or builder.options.force_remove:
            try:
                engine.containers.remove(container.id, force=True)
            except BerthError:
                pass
            builder.out(f"Removing intermediate container {container.short_id}")


def _stream(engine, container, write) -> int | None:
    """The container's stdout and stderr, as they come, to `write`; its exit code."""
    from berth.core.containers.attach import attach

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)

    def pump():
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with os.fdopen(read_fd, "rb", buffering=0) as source:
            while True:
                data = source.read(65536)
                text = decoder.decode(data, final=not data)
                if text:
                    write(text)
                if not data:
                    return

    reader = threading.Thread(target=pump, name="berth-build-output", daemon=True)
    reader.start()
    try:
        return attach(str(engine.containers.run_dir(container.id) / "attach.sock"),
                      stdin_fd=None, stdout_fd=write_fd, stderr_fd=write_fd)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    finally:
        os.close(write_fd)
        reader.join()
