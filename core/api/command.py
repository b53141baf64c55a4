"""`berth [GLOBAL FLAGS] system service [-t SECONDS] [URI]`: the click command.

The CLI names it as a string in its table of lazy commands
(berth.core.cli.system's `system` group), so nothing of this package is
imported unless the service runs.
"""

from __future__ import annotations

import click


@click.command("service", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-t", "--time", "timeout", type=int, default=5, show_default=True,
              help="Seconds of inactivity before the service exits (0: never).")
@click.argument("uri", required=False)
@click.pass_context
def service(ctx, timeout, uri):
    """Serve the Docker Engine API (1.43) on URI (default unix://<runroot>/berth.sock).

    tcp://127.0.0.1:PORT (loopback addresses only) is accepted too; under
    systemd socket activation (LISTEN_FDS) the inherited socket is used.
    """
    from berth.core import config
    from berth.core.api.server import default_uri, serve
    from berth.core.engine import Engine
    from berth.core.errors import InvalidArgument
    from berth.core.plumbing import log

    if timeout < 0:
        raise InvalidArgument(f"invalid timeout {timeout}: it must be 0 (never) or more seconds")
    layer = ctx.find_root().obj if isinstance(ctx.find_root().obj, dict) else None
    cfg = config.load(layer)
    log.setup(cfg.get("engine.log_level"), cfg.get("engine.log_format"))

    def make_engine():
        return Engine(cfg)

    return serve(make_engine, uri or default_uri(make_engine()), timeout)
