"""Registry commands: pull, push, login, logout, search."""

from __future__ import annotations

import signal
import sys

import click

from berth.core.cli.main import CONTEXT, get_engine
from berth.core.cli.progress import ProgressView
from berth.core.errors import InvalidArgument


def _terminate_as_interrupt() -> None:
    """SIGTERM ends a transfer like Ctrl-C: temporary blobs are removed on the way out."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.command("pull", context_settings=CONTEXT)
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("--platform", help="Set platform if server is multi-platform capable (os/arch[/variant]).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--authfile", metavar="PATH", help="Path of the authentication file (default: berth's, then Docker's).")
def pull(name, all_tags, platform, quiet, authfile):
    """Download an image from a registry."""
    from berth.core.images.transfer import path_transport
    from berth.core.images.transfer import pull as do_pull
    from berth.core.oci import reference as refs

    engine = get_engine()
    ref = name if path_transport(name) else refs.parse(name, default_tag=False)  # oci:PATH[:TAG] as it is
    if not isinstance(ref, str) and ref.tag is None and ref.digest is None and not all_tags:
        if not quiet:
            click.echo("Using default tag: latest")
        ref = ref.with_tag(refs.DEFAULT_TAG)
    view = ProgressView(sys.stdout.isatty(), quiet)

    _terminate_as_interrupt()
    results = do_pull(engine, ref, platform=platform, progress=view, all_tags=all_tags,
                      on_start=view.begin, auth_file=authfile) if not all_tags else \
        _pull_all(engine, ref, platform, view, quiet, authfile)
    for result in results:
        if quiet:
            click.echo(str(result.ref))
            continue
        if not all_tags:
            view.end(result)
            click.echo(str(result.ref))
    if all_tags and not quiet:
        newer = any(not r.up_to_date for r in results)
        status = "Downloaded newer image" if newer else "Image is up to date"
        click.echo(f"Status: {status} for {ref.familiar_name}")
        click.echo(ref.name)


def _pull_all(engine, ref, platform, view, quiet, authfile=None):
    from berth.core.images.transfer import pull as do_pull

    if not quiet:
        click.echo(f"Pulling from {ref.repository}")

    def on_start(one):
        view.reset()

    results = do_pull(engine, ref, platform=platform, progress=view, all_tags=True, on_start=on_start,
                      auth_file=authfile)
    if not quiet:
        for r in results:
            click.echo(f"{r.ref.tag}: Digest: {r.digest}")
    return results


@click.command("push", context_settings=CONTEXT)
@click.argument("name")
@click.argument("destination", required=False)
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--authfile", metavar="PATH", help="Path of the authentication file (default: berth's, then Docker's).")
def push(name, destination, all_tags, quiet, authfile):
    """Upload an image to a registry (or to DESTINATION, a TRANSPORT:PATH[:TAG] such as oci:/srv/images:v1)."""
    from berth.core.images.transfer import push as do_push
    from berth.core.oci import reference as refs

    engine = get_engine()
    ref = refs.parse(name, default_tag=False)
    if all_tags and ref.tag:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    if destination is not None and all_tags:
        raise InvalidArgument("--all-tags is for registries, not for " + destination.split(":", 1)[0])
    if not quiet:
        if ref.tag is None and not all_tags:
            click.echo("Using default tag: latest")
        click.echo(f"The push refers to repository [{destination or ref.name}]")
    view = ProgressView(sys.stdout.isatty(), quiet)
    _terminate_as_interrupt()
    target = ref.name if all_tags else str(ref if ref.tag else ref.with_tag(refs.DEFAULT_TAG))
    for one, digest, size in do_push(engine, target, progress=view, all_tags=all_tags, auth_file=authfile,
                                     on_start=lambda one: view.reset(), destination=destination):
        if not quiet:
            click.echo(f"{one.tag}: digest: {digest} size: {size}")
        else:
            click.echo(str(one))


def _server_host(server: str | None) -> str:
    """docker.io for none or Docker Hub's URLs; else the host[:port] of SERVER."""
    if not server:
        return "docker.io"
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if s in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return s


@click.command("login", context_settings=CONTEXT)
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.option("--authfile", metavar="PATH", help="Path of the authentication file (default: berth's own).")
def login(server, username, password, password_stdin, authfile):
    """Log in to a registry."""
    from berth.core.images.transfer import open_registry
    from berth.core.oci import credentials

    if password and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    host = _server_host(server)
    if not username:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        username = click.prompt("Username")
    if not password:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        password = click.prompt("Password", hide_input=True)
    engine = get_engine()
    registry = open_registry(engine, host, credentials=(username, password))
    registry.login(username, password)
    credentials.store(host, username, password, authfile)
    click.echo("Login Succeeded")


@click.command("logout", context_settings=CONTEXT)
@click.argument("server", required=False)
@click.option("--authfile", metavar="PATH", help="Path of the authentication file (default: berth's own).")
def logout(server, authfile):
    """Log out from a registry."""
    from berth.core.oci import credentials

    host = _server_host(server)
    shown = "https://index.docker.io/v1/" if host == "docker.io" else host
    if not credentials.erase(host, authfile):
        click.echo(f"Not logged in to {shown}")
        return
    click.echo(f"Removing login credentials for {shown}")


@click.command("search", context_settings=CONTEXT)
@click.argument("term")
@click.option("--limit", type=int, default=25, show_default=True, help="Max number of search results.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (is-official=true, stars=N).")
@click.option("--format", "fmt", help="Pretty-print search using a Go template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
def search(term, limit, filters, fmt, no_trunc):
    """Search Docker Hub or a registry for images."""
    from berth.core.cli import output
    from berth.core.images.transfer import search as search_

    parsed: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        parsed.setdefault(key, []).append(value)
    rows = []
    for r in search_(get_engine(), term, limit, parsed):
        desc = r["description"]
        if not no_trunc and len(desc) > 45:
            desc = desc[:44] + "…"
        rows.append({"Name": r["name"], "Description": desc, "StarCount": r["star_count"],
                     "IsOfficial": r["is_official"], "IsAutomated": r["is_automated"]})
    for r in rows:
        r["Official"] = "[OK]" if r["IsOfficial"] else ""
    columns = [("Name", "NAME"), ("Description", "DESCRIPTION"), ("StarCount", "STARS"), ("Official", "OFFICIAL")]
    output.table(rows[:limit], columns, fmt)
