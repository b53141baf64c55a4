"""berth's conformance kit: one suite per driver kind, shipped with berth.

Run a suite against your driver from any directory, with only berth and
pytest installed (and, for the kinds that need them, root and the host
tools each suite names)::

    pytest --berth-conformance volume:mydriver
    pytest --berth-conformance network:macvlan --berth-conformance-opt parent=eth1

or subclass a suite in your own tests to change a fixture::

    from berth.testing.storage import StorageSuite

    class TestMine(StorageSuite):
        DRIVERS = ["mystorage"]

The pytest plugin is ``berth.testing.plugin`` (entry point group
``pytest11``); the suites are ``berth.testing.storage``, ``.network``,
``.volume``, ``.logging`` and ``.registry``; ``berth.testing.registries``
runs real and scripted registries on 127.0.0.1 and ``berth.testing.support``
holds the small tools they share. See docs/writing-a-driver.md.
"""
