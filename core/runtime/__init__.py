"""berth's low-level container runtime, a library below the engine: it starts a
process in new namespaces from a spec and knows nothing of containers as berth
stores them (the monitor in berth.core.containers calls it).

Public API:
    start(spec: ContainerSpec, before_exec=None) -> Started
    exec_process(target_pid, spec: ProcessSpec, cgroup=None) -> int
    ContainerSpec, ProcessSpec, Mount, Limits, Cgroup, Started
    StartError (125), CommandNotFound (127), CommandNotExecutable (126)

Submodules are imported lazily so `import berth.core.runtime` stays cheap.
"""

_EXPORTS = {
    "start": "process", "exec_process": "process", "Started": "process",
    "process_start_time": "process",
    "ContainerSpec": "spec", "ProcessSpec": "spec", "Mount": "spec",
    "Limits": "cgroups", "Cgroup": "cgroups",
    "StartError": "errors", "CommandNotFound": "errors",
    "CommandNotExecutable": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
