"""The Docker Engine API (1.43) over a unix socket: `berth system service`.

One asyncio process (aiohttp). Handlers are thin: they translate Docker's
JSON to the arguments of the same engine services the CLI calls
(`engine.containers`, `engine.images`, `engine.networks`, `engine.volumes`)
and run them in a thread pool, so a long pull or a waiting container never
blocks another request. Each pool thread has an Engine of its own (its own
SQLite connection); containers never depend on this process: their
monitors hold them, and a service killed with -9 loses nothing.

Modules: `server` (listening, versions, errors, idle timeout, shutdown),
`streams` (hijacked connections and Docker's stream framing), `create`
(the one table from Docker's Config/HostConfig to berth's CreateOptions),
and one module of handlers per object kind.

The CLI never imports this package on start-up: `berth system service`
imports it when it runs.
"""
