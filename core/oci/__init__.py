"""The image formats, below the services and shared with drivers: image references,
the content-addressable blob store and digests, layer tar archives, and the
credentials kept for registries."""
