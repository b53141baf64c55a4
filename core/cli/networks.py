"""`berth network create|ls|inspect|rm|connect|disconnect|prune` and `berth port`."""

from __future__ import annotations

import click

from berth.core.cli import filters as filters_
from berth.core.cli import output
from berth.core.cli.main import CONTEXT, get_engine
from berth.core.errors import InvalidArgument, NotFound


@click.group("network", context_settings=CONTEXT)
def network():
    """Manage networks."""


@network.command("create", context_settings=CONTEXT)
@click.argument("name")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network.")
@click.option("--subnet", help="Subnet in CIDR format that represents a network segment.")
@click.option("--gateway", help="IPv4 Gateway for the master subnet.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network (key=value).")
@click.option("-o", "--opt", "opts", multiple=True,
              help="Set driver specific options (key=value; bridge: com.docker.network.bridge.name, "
                   "com.docker.network.driver.mtu, com.docker.network.bridge.enable_ip_masquerade).")
def create(name, driver, subnet, gateway, internal, labels, opts):
    """Create a network."""
    if gateway and not subnet:
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    label_map = {}
    for item in labels:
        key, _, value = item.partition("=")
        label_map[key] = value
    options = {}
    for item in opts:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid option '{item}': must be key=value")
        options[key] = value
    info = get_engine().networks.create(name, driver, subnet, gateway, internal, label_map, options)
    click.echo(info["Id"])


@network.command("ls", context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Provide filter values (driver=, id=, label=, name=, type=custom|builtin, dangling=true).")
@click.option("--format", "fmt", help="Format output using a Go template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
def ls(quiet, filters, fmt, no_trunc):
    """List networks."""
    from berth.core.networks.network import PREDEFINED

    engine = get_engine()
    engine.networks.recover()
    flt = filters_.parse(filters, ("driver", "id", "label", "name", "type", "dangling", "scope"))
    rows = []
    for net in engine.networks.list():
        if "driver" in flt and net["Driver"] not in flt["driver"]:
            continue
        if "id" in flt and not any(net["Id"].startswith(v) for v in flt["id"]):
            continue
        if "name" in flt and not any(v in net["Name"] for v in flt["name"]):
            continue
        if "scope" in flt and "local" not in flt["scope"]:
            continue
        if "label" in flt and not all(filters_.label_match(net["Labels"] or {}, l) for l in flt["label"]):
            continue
        if "type" in flt:
            kind = "builtin" if net["Name"] in PREDEFINED else "custom"
            if kind not in flt["type"]:
                continue
        if "dangling" in flt:
            want = flt["dangling"][0].lower() in ("true", "1")
            dangling = net["Name"] not in PREDEFINED and not engine.networks.users(net["Name"])
            if want != dangling:
                continue
        rows.append({"ID": net["Id"] if no_trunc else net["Id"][:12], "Name": net["Name"], "Driver": net["Driver"],
                     "Scope": net["Scope"], "IPv6": "false", "Internal": str(net["Internal"]).lower(),
                     "CreatedAt": net["Created"],
                     "Labels": ",".join(f"{k}={v}" for k, v in (net["Labels"] or {}).items())})
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    output.table(rows, [("ID", "NETWORK ID"), ("Name", "NAME"), ("Driver", "DRIVER"), ("Scope", "SCOPE")], fmt)


@network.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
def inspect(names, fmt):
    """Display detailed information on one or more networks."""
    engine = get_engine()
    output.inspect_each(names, lambda name: engine.networks.inspect(name), fmt)


@network.command("rm", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
def rm(names, force):
    """Remove one or more networks."""
    engine = get_engine()

    def remove(name):
        try:
            engine.networks.remove(name)
            click.echo(name)
        except NotFound:
            if not force:  # -f: a missing one is not an error
                raise

    output.each(names, remove)


@network.command("connect", context_settings=CONTEXT)
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container", metavar="CONTAINER")
def connect(aliases, network_name, container):
    """Connect a container to a network."""
    get_engine().networks.connect(network_name, container, list(aliases))


@network.command("disconnect", context_settings=CONTEXT)
@click.argument("network_name", metavar="NETWORK")
@click.argument("container", metavar="CONTAINER")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
def disconnect(network_name, container, force):
    """Disconnect a container from a network."""
    get_engine().networks.disconnect(network_name, container, force=force)


@network.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
def prune(force, filters):
    """Remove all unused networks."""
    accepts = filters_.prune_accepts(filters_.parse(filters))
    removed = get_engine().networks.prune(accepts)
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)


network.add_command(ls, "list")
network.add_command(rm, "remove")


@click.command("port", context_settings=CONTEXT)
@click.argument("container")
@click.argument("port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
def port(container, port):
    """List port mappings or a specific mapping for the container."""
    for line in get_engine().networks.port_lines(container, port):
        click.echo(line)
