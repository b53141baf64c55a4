"""The plugin contract: every hook berth calls, grouped by phase.

A plugin is a module (or object) with functions marked `@hookimpl` whose
names are those below; it is found through an entry point in group
``berth`` -- the default plugin set is found the very same way::

    # pyproject.toml of a third-party plugin
    [project.entry-points.berth]
    mystorage = "berth_mystorage"

    # berth_mystorage/__init__.py
    from berth.core.hookspecs import hookimpl

    @hookimpl
    def register_storage_drivers(register):
        register("mystorage", "berth_mystorage.driver:MyStorageDriver")

Registration hooks hand the plugin a ``register(name, driver)`` callback
owned by the core. They must register the same drivers every time: berth
records what they register (berth.core.plugins) until a distribution is
installed or removed or a plugin's files change; a driver that cannot run
on some host says so through ``unsupported_reason()``. ``driver`` is the driver class or a ``"module:Class"``
string; a string is imported only when a user picks that driver, so plugin
modules stay cheap to import and heavy libraries (pyroute2,
prometheus_client) load only when needed. A plugin that registers a name
another already has, whose registration raises, that fails to import or
that pluggy refuses (a hook argument not named here) is disabled with one
warning line (berth.core.plugins); the other plugins work on.

Lifecycle hooks are called by the engine at each step, after the step's
event was emitted. They are notifications: their return values are ignored,
and an exception raised by one is logged, never fatal to the user's command,
except in the ``*_pre_*`` hooks, where raising ``berth.core.errors.BerthError``
aborts the step with that message.
"""



class _Marker:
    """``@hookimpl`` / ``@hookimpl(tryfirst=True)``: pluggy's markers, minus
    the import of pluggy. Plugin modules are imported whenever one of their
    drivers is (every container start), and pluggy costs ~5 ms to import;
    berth's plugin manager (berth.core.plugins) hands the recorded options
    to pluggy's own marker when it loads. pluggy.HookimplMarker("berth")
    works as well."""

    def __init__(self, attribute: str):
        self.attribute = attribute

    def __call__(self, function=None, **options):
        def mark(f):
            setattr(f, self.attribute, options)
            return f

        return mark if function is None else mark(function)


hookspec = _Marker("berth_hookspec")
hookimpl = _Marker("berth_hookimpl")


# --------------------------------------------------------------------------
# Registration: which drivers a plugin provides
# --------------------------------------------------------------------------


@hookspec
def register_storage_drivers(register):
    """Name the storage drivers this plugin provides.

    :param register: ``register(name, driver)``; ``driver`` is a subclass of
        :class:`berth.core.drivers.StorageDriver` or a ``"module:Class"`` string.
        ``name`` is what users put in ``storage.driver`` or ``--storage-driver``.
    """


@hookspec
def register_network_drivers(register):
    """Name the network drivers (``bridge``, ``host`` ...) this plugin provides.

    :param register: ``register(name, driver)`` with a
        :class:`berth.core.drivers.NetworkDriver` subclass or ``"module:Class"``.
    """


@hookspec
def register_volume_drivers(register):
    """Name the volume backends this plugin provides (``--volume-driver``).

    :param register: ``register(name, driver)`` with a
        :class:`berth.core.drivers.VolumeDriver` subclass or ``"module:Class"``.
    """


@hookspec
def register_log_drivers(register):
    """Name the log drivers this plugin provides (``--log-driver``).

    :param register: ``register(name, driver)`` with a
        :class:`berth.core.drivers.LogDriver` subclass or ``"module:Class"``.
    """


@hookspec
def register_registries(register):
    """Name the image transports this plugin provides.

    ``docker`` is the OCI distribution HTTP API; archive formats register
    ``docker-archive`` and ``oci-archive``.

    :param register: ``register(name, driver)`` with a
        :class:`berth.core.drivers.Registry` subclass or ``"module:Class"``.
    """


# --------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------


@hookspec
def engine_started(engine):
    """The engine is configured and is about to use its plugins for the first time.

    Called once per berth process, before the first driver lookup or hook
    call; commands that need no plugin (``ps``, ``inspect``) do not fire it.

    :param engine: the :class:`berth.core.engine.Engine`.
    """


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------


@hookspec
def image_stored(engine, image, action):
    """An image entered the store.

    :param image: the :class:`berth.core.images.image.Image`.
    :param action: ``"import"``, ``"load"``, ``"pull"`` or ``"commit"``.
    """


@hookspec
def image_removed(engine, image_id):
    """An image and the layers no other image shares were deleted.

    :param image_id: the deleted image's ID (``sha256:...``).
    """


# --------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------


@hookspec
def container_created(engine, container):
    """A container exists (its writable layer is made), not yet started.

    :param container: the :class:`berth.core.containers.container.Container`:
        ``container.id``, ``container.name``, ``container.config`` and
        ``container.host_config`` (inspect's Config and HostConfig, dicts),
        ``container.state`` (inspect's State, a dict: ``container.state["Status"]``
        is ``"created"``).
    """


@hookspec
def container_pre_start(engine, container):
    """The container is about to start; raise BerthError to refuse.

    :param container: the :class:`berth.core.containers.container.Container`;
        ``container.state["Status"]`` is ``"created"`` or ``"exited"``.
    """


@hookspec
def container_post_start(engine, container):
    """The container's process runs.

    :param container: the :class:`berth.core.containers.container.Container`;
        ``container.state`` is a dict: ``container.state["Status"] == "running"``,
        ``container.state["Pid"]`` is its PID 1 on the host (also ``container.pid``).
        Called in the container's monitor process.
    """


@hookspec
def container_post_stop(engine, container):
    """The container's process exited and what it held (network, mounts) is released.

    :param container: the :class:`berth.core.containers.container.Container`
        as stored after the stop: ``container.state["Status"] == "exited"``,
        ``container.state["ExitCode"]``, ``container.state["FinishedAt"]``,
        ``container.state["OOMKilled"]``. Called in the process that saw the
        exit (the container's monitor, or the next berth command when the
        monitor died).
    """


@hookspec
def container_removed(engine, container_id):
    """The container and its writable layer were deleted."""


# --------------------------------------------------------------------------
# Volumes and networks
# --------------------------------------------------------------------------


@hookspec
def volume_created(engine, volume):
    """A named volume was created."""


@hookspec
def volume_removed(engine, name):
    """A named volume was deleted."""


@hookspec
def network_created(engine, network):
    """A network was created."""


@hookspec
def network_removed(engine, name):
    """A network was deleted."""


# --------------------------------------------------------------------------
# Events and metrics
# --------------------------------------------------------------------------


@hookspec
def event_emitted(engine, event):
    """berth recorded a state change: called for every event, from every
    command (``stop``, ``kill``, ``rm -f`` too) and from containers'
    monitors, in the process that made the change, after the event reached
    the journal. An audit plugin subscribes here instead of following the
    journal. While no installed plugin implements this hook, no command
    loads plugins for it (berth.core.plugins records who implements what).

    :param event: the event as ``berth events --format '{{json .}}'`` prints
        it, a dict: ``event["Type"]`` (``"container"``, ``"image"``,
        ``"volume"``, ``"network"``), ``event["Action"]`` (``"start"``,
        ``"die"``, ``"destroy"`` ...), ``event["Actor"]["ID"]``,
        ``event["Actor"]["Attributes"]``, ``event["timeNano"]``.
    """


@hookspec
def register_metrics(engine, register):
    """Add collectors to what ``berth metrics serve`` and ``berth metrics show``
    expose (a storage driver reporting its usage, say). Called when the
    metrics command builds its registry, only there: import
    prometheus_client inside the hook.

    :param register: ``register(collector)``: a prometheus_client collector,
        an object whose ``collect()`` yields metric families. A collector
        that raises is left out of that scrape and logged; the others are
        served.
    """

