"""The conformance kit as a pytest plugin (entry point group ``pytest11``).

pytest loads it wherever berth is installed. It adds:

``--berth-conformance KIND:DRIVER`` (repeatable)
    Run the suite of KIND (storage, network, volume, logging, registry)
    against DRIVER, a name some installed plugin registers. Without paths
    on the command line, only the kit's suites are collected, so this works
    from any directory: ``pytest --berth-conformance volume:mine``. With
    paths, those are collected and the option picks the drivers of the
    suites found there (a ``class TestX(VolumeSuite)`` of your own).
``--berth-conformance-opt KEY=VALUE`` (repeatable)
    An option handed to the driver under test (to its constructor, or the
    network's or volume's options): a macvlan driver's ``parent=eth1``.

A suite is a class (``berth.testing.storage.StorageSuite`` ...) whose
cases take the ``driver_name`` fixture; this plugin parametrizes it with
the drivers picked for the suite's ``KIND``: those of the option, else the
class's ``DRIVERS``, else every registered driver of that kind this host
supports. A case marked ``@pytest.mark.berth_driver(attribute=value)``
applies only to drivers whose class has that attribute value (``readable``
log drivers, network drivers that ``publish_ports``); for the others it is
deselected, not skipped.
"""

from __future__ import annotations

import os

import pytest

pytest.register_assert_rewrite("berth.testing.storage", "berth.testing.network", "berth.testing.volume",
                               "berth.testing.logging", "berth.testing.registry", "berth.testing.support")

#: the registries' fixtures (registry_open, registry_htpasswd, registry_token, fake_server_factory)
pytest_plugins = ["berth.testing.registries"]

#: the kit's kind -> berth.core.plugins' kind
KINDS = {"storage": "storage", "network": "network", "volume": "volume", "logging": "log", "registry": "registry"}
_SELECTED = pytest.StashKey[dict]()
_OPTIONS = pytest.StashKey[dict]()
SUITES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conformance.py")


def pytest_addoption(parser):
    group = parser.getgroup("berth", "berth conformance kit")
    group.addoption("--berth-conformance", action="append", default=[], metavar="KIND:DRIVER",
                    help="run berth's conformance suite of KIND (storage, network, volume, logging, registry) "
                         "against DRIVER (repeatable)")
    group.addoption("--berth-conformance-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="an option for the driver under test (repeatable)")


def _parse(config) -> tuple[dict[str, list[str]], dict[str, str]]:
    selected: dict[str, list[str]] = {}
    for value in config.getoption("berth_conformance") or []:
        kind, sep, name = value.partition(":")
        if not sep or not name:
            raise pytest.UsageError(f"--berth-conformance {value!r}: expected KIND:DRIVER, e.g. volume:local")
        if kind not in KINDS:
            raise pytest.UsageError(f"--berth-conformance {value!r}: unknown kind {kind!r} "
                                    f"(one of {', '.join(KINDS)})")
        selected.setdefault(kind, [])
        if name not in selected[kind]:
            selected[kind].append(name)
    options = {}
    for value in config.getoption("berth_conformance_opt") or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--berth-conformance-opt {value!r}: expected KEY=VALUE")
        options[key] = val
    return selected, options


def _check_drivers(selected: dict[str, list[str]]) -> None:
    """An unknown or unsupported driver, or a host tool the suite needs that is
    missing, is one usage error before anything runs."""
    import shutil

    from berth.core import plugins
    from berth.core.errors import BerthError

    for kind, names in selected.items():
        for name in names:
            try:
                cls = plugins.drivers(KINDS[kind]).supported(name)
            except BerthError as exc:
                raise pytest.UsageError(f"--berth-conformance {kind}:{name}: {exc}") from None
            for tool in _tools(kind, cls):
                if shutil.which(tool) is None:
                    raise pytest.UsageError(f"--berth-conformance {kind}:{name}: the {kind} suite needs {tool}, "
                                            "which is not on PATH")


def _tools(kind: str, cls) -> list[str]:
    """The host commands the suite of `kind` runs for driver class `cls`."""
    if kind == "network":
        return ["ip", "nsenter", "busybox"]
    if kind == "storage" and cls.home_filesystem:
        return [f"mkfs.{cls.home_filesystem}", "losetup", "mount"]
    if kind == "registry" and cls.location_kind == "host":
        return ["docker-registry"]
    return []


def pytest_configure(config):
    config.addinivalue_line("markers", "berth_driver(**attributes): the case applies only to drivers whose "
                                       "class has these attribute values")
    selected, options = _parse(config)
    config.stash[_SELECTED] = selected
    config.stash[_OPTIONS] = options
    if not selected:
        return
    _check_drivers(selected)
    from_args = getattr(config, "args_source", None) == pytest.Config.ArgsSource.ARGS
    if not from_args:  # no paths given: the kit's own suites, of the kinds asked for
        config.args[:] = [f"{SUITES}::Test{kind.capitalize()}" for kind in KINDS if kind in selected]


def selected_drivers(config, kind: str, default: list[str] | None) -> list[str]:
    """The drivers the suite of `kind` runs against (see the module's doc)."""
    chosen = config.stash.get(_SELECTED, {}).get(kind)
    if chosen:
        return chosen
    if default is not None:
        return list(default)
    from berth.core import plugins

    registry = plugins.drivers(KINDS[kind])
    return [n for n in registry.names() if registry.get(n).unsupported_reason() is None]


def pytest_generate_tests(metafunc):
    kind = getattr(metafunc.cls, "KIND", None)
    if kind in KINDS and "driver_name" in metafunc.fixturenames:
        names = selected_drivers(metafunc.config, kind, getattr(metafunc.cls, "DRIVERS", None))
        metafunc.parametrize("driver_name", names)


def pytest_collection_modifyitems(config, items):
    """Deselect the cases whose berth_driver marker the driver does not match."""
    from berth.core import plugins

    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("berth_driver")
        name = getattr(getattr(item, "callspec", None), "params", {}).get("driver_name")
        kind = getattr(getattr(item, "cls", None), "KIND", None)
        if marker is None or name is None or kind not in KINDS:
            kept.append(item)
            continue
        cls = plugins.drivers(KINDS[kind]).get(name)
        applies = all(getattr(cls, attr, None) == value for attr, value in marker.kwargs.items())
        (kept if applies else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def driver_options(request) -> dict[str, str]:
    """The options given with --berth-conformance-opt (a dict, empty by default)."""
    return dict(request.config.stash.get(_OPTIONS, {}))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed storage case shows the mounts and the tree of every home it used."""
    outcome = yield
    report = outcome.get_result()
    homes = getattr(item, "berth_homes", None)
    if report.when == "call" and report.failed and homes:
        from berth.testing.support import mounts_under, tree_listing

        for home in homes:
            mounted = "\n".join(mounts_under(home)) or "(none)"
            report.sections.append((f"driver home {home}", f"mounts:\n{mounted}\n\ntree:\n{tree_listing(home)}"))


@pytest.fixture(scope="session")
def loop_filesystem(tmp_path_factory):
    """loop_filesystem(fstype) -> the mount point of a 512 MiB `fstype`
    filesystem (mkfs.<fstype>) on a loop device, made once per session and
    unmounted and detached at its end: the home a storage driver's
    ``home_filesystem`` asks for (btrfs)."""
    import subprocess

    made: dict[str, object] = {}
    devices, points = [], []

    def make(fstype: str):
        if fstype not in made:
            base = tmp_path_factory.mktemp(f"loop-{fstype}")
            image, point = base / "fs.img", base / "mnt"
            point.mkdir()
            with open(image, "wb") as f:
                f.truncate(512 << 20)
            subprocess.run([f"mkfs.{fstype}", "-q", str(image)], check=True, capture_output=True)
            device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                                    text=True).stdout.strip()
            devices.append(device)
            subprocess.run(["mount", "-t", fstype, device, str(point)], check=True, capture_output=True)
            points.append(point)
            made[fstype] = point
        return made[fstype]

    try:
        yield make
    finally:
        for point in points:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
        for device in devices:
            subprocess.run(["losetup", "-d", device], capture_output=True)
