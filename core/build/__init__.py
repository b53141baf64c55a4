"""berth build: Docker's classic builder (berth.core.build.builder).

The entry point for every caller (the CLI's `berth build`, the Engine API's
POST /build): make a Context (a directory, a tar stream, or a Dockerfile
alone), then `build(engine, context, BuildOptions(...), out)`.
"""

from berth.core.build.builder import BuildFailed, BuildOptions, build
from berth.core.build.context import Context, looks_like_archive
from berth.core.build.parser import DockerfileError

__all__ = ["BuildFailed", "BuildOptions", "Context", "DockerfileError", "build", "looks_like_archive"]
