"""`berth system check [--repair]`: compare the store with the disk (berth.core.containers.check)."""

from __future__ import annotations

import click

from berth.core.cli.main import CONTEXT, get_engine
from berth.core.errors import BerthError


@click.command("check", context_settings=CONTEXT)
@click.option("-r", "--repair", is_flag=True, help="Remove or fix what is inconsistent.")
def check(repair):
    """Check the store against the disk: layers, containers, blobs and locks.

    Prints one line per inconsistency and exits 1, or with --repair fixes
    each one and exits 0 once all are fixed. Exit 0 means consistent.
    """
    from berth.core.containers.check import check_and_repair

    engine = get_engine()
    left = check_and_repair(engine, repair, lambda line: click.echo(line))
    if left:
        raise BerthError(f"{left} inconsistenc{'y' if left == 1 else 'ies'} found" +
                         ("" if repair else " (berth system check --repair fixes them)"))
