"""Plumbing: what every layer above may use and that knows nothing of containers or images.

The metadata store (SQLite), the event bus and journal, structured logging, atomic
file writes, records kept in ~/.cache, small value-type records, IDs, units and
durations, and forked helper processes."""
