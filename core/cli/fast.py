"""Commands parsed without click (importing click costs a command 10 to 30
ms): `run` and `create` (berth.core.cli.run), and `inspect`, `images` and
`import` (here, tables and bodies), which tools and scripts call most. `fast()` takes the command lines people type; anything
else (--help, a flag it does not know, a bad value) falls back to click,
which has the one set of error messages (berth.core.cli.flags)."""

from __future__ import annotations

from berth.core.cli.base import GLOBAL_FLAGS, make_engine, overrides, reported
from berth.core.cli.flags import Fallback, Flag, parse
from berth.core.errors import BerthError, InvalidArgument, NotFound

IMAGES_FLAGS = [
    Flag("-a", "--all", dest="all_", kind="bool", help="Show all images (default hides intermediate images)."),
    Flag("-q", "--quiet", kind="bool", help="Only show image IDs."),
    Flag("--no-trunc", kind="bool", help="Don't truncate output."),
    Flag("--digests", kind="bool", help="Show digests."),
    Flag("-f", "--filter", dest="filters", kind="multiple",
         help="Filter output (dangling=true, reference=PATTERN)."),
    Flag("--format", dest="fmt", help="Format output using a Go template, 'table ...' or 'json'."),
]
IMPORT_FLAGS = [
    Flag("-m", "--message", default="", help="Set commit message for imported image."),
    Flag("-c", "--change", dest="changes", kind="multiple", help="Apply Dockerfile instruction to the created image."),
]
INSPECT_FLAGS = [
    Flag("-f", "--format", dest="fmt", help="Format output using a Go template."),
    Flag("-s", "--size", kind="bool", help="Display total file sizes if the type is container."),
    Flag("--type", dest="type_", choices=("container", "image"), help="Return JSON for specified type."),
]


def fast(argv: list[str]) -> int | None:
    """Run `berth [GLOBAL FLAGS] COMMAND ...` without click; None when click must parse it."""
    try:
        global_values, rest = parse(GLOBAL_FLAGS, argv)
        if not rest:
            return None
        if rest[0] in ("run", "create"):
            from berth.core.cli import run

            return run.fast(global_values, rest)
        if rest[0] not in COMMANDS:
            return None
        table, least, most, body = COMMANDS[rest[0]]
        values, positionals = parse(table, rest[1:])
    except Fallback:
        return None
    if not least <= len(positionals) <= most or any(p.startswith("-") and p != "-" for p in positionals[1:]):
        return None  # click says what is missing or too much, or takes flags after the names
    layer = overrides(global_values)
    return reported(lambda: body(make_engine(layer), *positionals, values=values))


def inspect_objects(engine, *names: str, values: dict) -> int:
    """`berth inspect`: containers, then images, by each name; Docker's error for the rest."""
    import sys

    from berth.core.cli import output

    fmt, type_ = values.get("fmt"), values.get("type_")
    found, errors = [], []
    for name in names:
        obj = None
        if type_ in (None, "container"):
            try:
                obj = engine.containers.inspect(engine.containers.get(name))
            except NotFound:
                pass
        if obj is None and type_ in (None, "image"):
            try:
                obj = engine.images.inspect(engine.images.get(name))
            except (NotFound, InvalidArgument):
                pass
        if obj is None:
            errors.append(f"No such object: {name}")
        else:
            found.append(obj)
    output.inspect(found, fmt)
    if errors:
        for message in errors:
            print(f"Error: {message}", file=sys.stderr)
        raise BerthError("")
    return 0


def list_images(engine, repository: str | None = None, values: dict | None = None) -> int:
    """`berth images`."""
    import fnmatch
    import sys

    from berth.core.cli import filters as filters_
    from berth.core.cli import output
    from berth.core.oci import reference as refs
    from berth.core.plumbing.units import ago, go_time, human_size, parse_time

    values = values or {}
    all_, quiet, no_trunc = values.get("all_"), values.get("quiet"), values.get("no_trunc")
    flt = filters_.parse(values.get("filters") or (), {"dangling", "reference", "label", "before", "since"})
    before = [parse_time(engine.images.get(v).created) for v in flt.get("before", [])]
    since = [parse_time(engine.images.get(v).created) for v in flt.get("since", [])]
    rows = []
    seen_ids = []
    all_images = engine.images.all()
    parents = {img.parent for img in all_images if img.parent}
    for img in all_images:
        for problem in img.problems:
            print(f"WARNING: image {img.short_id}: {problem}", file=sys.stderr)
        names = img.tags or [None]
        intermediate = not img.tags and img.id in parents
        if intermediate and not all_:
            continue
        if "dangling" in flt and (flt["dangling"][0] == "true") != (not img.tags):
            continue
        labels = (img.config.get("config") or {}).get("Labels") or {}
        if not all(filters_.label_match(labels, v) for v in flt.get("label", [])):
            continue
        if (before or since) and (any(parse_time(img.created) >= t for t in before)
                                  or any(parse_time(img.created) <= t for t in since)):
            continue
        for name in names:
            ref = refs.parse(name) if name else None
            repo = ref.familiar_name if ref else "<none>"
            tag = ref.tag if ref else "<none>"
            if repository and not _matches_repository(ref, repository):
                continue
            if "reference" in flt and not any(
                    ref and (fnmatch.fnmatch(ref.familiar_name, p) or fnmatch.fnmatch(ref.familiar, p))
                    for p in flt["reference"]):
                continue
            digest = next((d.split("@", 1)[1] for d in img.digests if ref and d.startswith(ref.name + "@")), "<none>")
            rows.append({
                "Repository": repo, "Tag": tag,
                "ID": img.id if no_trunc else img.short_id,
                "Digest": digest,
                "CreatedSince": ago(img.created), "CreatedAt": go_time(img.created),
                "Size": human_size(img.size), "VirtualSize": human_size(img.size),
                "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A",
            })
            seen_ids.append(rows[-1]["ID"])
    if quiet:
        for image_id in dict.fromkeys(seen_ids):
            print(image_id)
        return 0
    columns = [("Repository", "REPOSITORY"), ("Tag", "TAG")]
    if values.get("digests"):
        columns.append(("Digest", "DIGEST"))
    columns += [("ID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE")]
    output.table(rows, columns, values.get("fmt"))
    return 0


def _matches_repository(ref, argument: str) -> bool:
    """`berth images REPOSITORY[:TAG]`: the tag is what follows the last ':' after the last '/'
    (a registry's port is not a tag); the repository may be a pattern."""
    import fnmatch

    if ref is None:
        return False
    name, tag = argument, None
    if ":" in argument.rsplit("/", 1)[-1]:
        name, tag = argument.rsplit(":", 1)
    if tag is not None and tag != ref.tag:
        return False
    return fnmatch.fnmatch(ref.familiar_name, name) or fnmatch.fnmatch(ref.name, name)


def import_image(engine, source: str, repository: str | None = None, values: dict | None = None) -> int:
    """`berth import SOURCE [REPOSITORY[:TAG]]`: SOURCE a file path or - for standard input."""
    import sys

    from berth.core.images.dockerfile import apply_changes
    from berth.core.oci import reference as refs

    values = values or {}
    ref = refs.parse(repository) if repository else None
    if ref and ref.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    config = apply_changes({}, values.get("changes") or ())
    if source == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(source, "rb")
        except OSError as exc:
            raise NotFound(f"open {source}: {exc.strerror.lower()}") from None
    with stream:
        image = engine.images.import_tarball(stream, ref, values.get("message") or "", config, source)
    print(image.id)
    return 0


# name -> (flag table, fewest and most positional arguments, body)
COMMANDS = {
    "inspect": (INSPECT_FLAGS, 1, 10**6, inspect_objects),
    "images": (IMAGES_FLAGS, 0, 1, list_images),
    "import": (IMPORT_FLAGS, 1, 2, import_image),
}
