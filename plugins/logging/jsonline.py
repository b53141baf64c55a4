"""One json-file record. Light on purpose: a container's monitor, in its
steady state (berth.core.containers.steady), loads this file alone to write
the json-file log, so it imports only the C module time."""

import time

_HEX = "0123456789abcdef"
_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r"}


def escape(data: bytes) -> bytes:
    """Docker's JSON string escaping of a log line (jsonlog's ffjson writer).

    Control characters and <, >, & as \\u00XX (\\n and \\r short), U+2028 and
    U+2029 escaped, invalid UTF-8 bytes become \\ufffd.
    """
    text = data.decode("utf-8", errors="replace")
    out = []
    for ch in text:
        c = ord(ch)
        if c < 0x80:
            if c in _ESCAPES:
                out.append(_ESCAPES[c])
            elif c < 0x20 or ch in "<>&":
                out.append("\\u00" + _HEX[c >> 4] + _HEX[c & 0xF])
            else:
                out.append(ch)
        elif ch == "\ufffd":
            out.append("\\ufffd")
        elif ch in "\u2028\u2029":
            out.append("\\u202" + _HEX[c & 0xF])
        else:
            out.append(ch)
    return "".join(out).encode("utf-8")


def record(stream: str, line: bytes, when: str) -> bytes:
    """One json-file line, newline included; `when`: RFC 3339 text."""
    return b'{"log":"%s","stream":"%s","time":"%s"}\n' % (escape(line), stream.encode(), when.encode())


def encode_line(stream: str, line: bytes, time_ns: int) -> bytes:
    """record() at `time_ns` (nanoseconds since the epoch), as Go's RFC3339Nano of
    microseconds (the json-file driver's format_time)."""
    seconds, ns = divmod(time_ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    frac = f"{ns // 1000:06d}".rstrip("0")
    return record(stream, line, f"{base}.{frac}Z" if frac else f"{base}Z")
