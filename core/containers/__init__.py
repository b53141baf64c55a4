"""Containers: their lifecycle (create, start, stop, remove, commit), the monitor that
owns each running container's stdio, logs and exit, the client that attaches to it,
mounts, published ports and links."""
