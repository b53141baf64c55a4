"""Network modes as containers name them: whether the network service wires one.

Light on purpose: the monitor's standby imports it before its fork.
"""


def joins_networks(container) -> bool:
    """Whether the network service wires the container (not host, none or another container's)."""
    return network_joined(container.network_mode)


def network_joined(mode: str) -> bool:
    return mode not in ("host", "none") and not mode.startswith("container:")
