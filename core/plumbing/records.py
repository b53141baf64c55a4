"""Plain records: what a dataclass gives (keyword construction, defaults,
equality, a readable repr), without importing dataclasses, which costs a
command ~5 ms with the inspect module it loads (and each class more to build).

    class Limits(Record):
        FIELDS = {"memory": None, "cpus": None}
        REQUIRED = ()

A list, dict or set default is copied for each record.

berth's value types come in two kinds, and only these two:
- an immutable value compared by value (a reference, a layer, a driver's
  Change or PortMapping): a `collections.namedtuple` subclass with
  `__slots__ = ()`;
- a mutable record with named fields and defaults (a container, an image,
  a runtime spec): a `Record`.
Neither imports dataclasses or typing (see "Start-up cost" in docs/architecture.md).
"""

from __future__ import annotations


class Record:
    FIELDS: dict = {}  # name -> default
    REQUIRED: tuple = ()  # names without a default

    def __init__(self, **values):
        missing = [name for name in self.REQUIRED if name not in values]
        unknown = values.keys() - self.FIELDS.keys() - set(self.REQUIRED)
        if missing or unknown:
            raise TypeError(f"{type(self).__name__}: missing {missing or 'nothing'}, unknown {sorted(unknown) or 'nothing'}")
        for name in self.REQUIRED:
            setattr(self, name, values[name])
        for name, default in self.FIELDS.items():
            if name in values:
                setattr(self, name, values[name])
            else:
                setattr(self, name, type(default)(default) if isinstance(default, (list, dict, set)) else default)

    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # mutable, as a dataclass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"
