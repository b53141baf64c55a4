"""berth's default image transports: the OCI distribution HTTP API ("docker")
and image archives ("docker-archive", "oci-archive"). Modules load on first use."""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_registries(register):
    register("docker", "berth.plugins.registry.distribution:DistributionRegistry")
    register("docker-archive", "berth.plugins.registry.archive:DockerArchive")
    register("oci-archive", "berth.plugins.registry.archive:OCIArchive")
