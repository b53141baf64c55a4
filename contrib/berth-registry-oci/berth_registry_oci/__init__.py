"""berth plugin: the ``oci`` image transport, an OCI image layout directory
(``berth pull oci:/srv/images:v1``, ``berth push busybox oci:/srv/images:v1``).

Imported whenever berth loads its plugins, so it stays tiny: the driver is
registered as a ``"module:Class"`` string, imported only when it is used.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_registries(register):
    register("oci", "berth_registry_oci.layout:OCILayout")
