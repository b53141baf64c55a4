"""`berth metrics`: what Prometheus scrapes."""

from __future__ import annotations

import sys

import click

from berth.core.cli.main import CONTEXT, get_engine


@click.group("metrics", context_settings=CONTEXT)
def metrics():
    """Prometheus metrics: events, containers, images, cgroup usage."""


@metrics.command("serve", context_settings=CONTEXT)
@click.option("--address", help="host:port to listen on (default: metrics.address from the config).")
def serve(address):
    """Serve /metrics for Prometheus until interrupted."""
    from berth.core import metrics as m
    from berth.core.errors import Conflict

    engine = get_engine()
    address = address or engine.config.get("metrics.address")
    try:
        server = m.serve(engine, address)
    except OSError as exc:
        raise Conflict(f"listen tcp {address}: bind: {exc.strerror.lower()}") from None
    click.echo(f"Serving metrics on http://{address}/metrics", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@metrics.command("show", context_settings=CONTEXT)
def show():
    """Print the metrics of one scrape."""
    from berth.core import metrics as m

    sys.stdout.write(m.render(get_engine()).decode())
