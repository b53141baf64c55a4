"""Go's text/template as Docker's `--format` uses it, and Docker's tables.

`render` evaluates one template (lexer -> AST -> evaluator) with Docker's
extra functions (json, join, split, upper, lower, title, truncate, pad).
`format_rows` is what listing commands call with the user's `--format`
(`table ...`, a template, or `json`); `columns` prints the default aligned
table. Both align cells exactly like Docker's tabwriter (minwidth 10,
padding 3). Every error is one `InvalidArgument` line in Docker's words:
`template parsing error: template: :1: function "foo" not defined`.
"""

from __future__ import annotations

import functools
import json
import re

from berth.core.errors import InvalidArgument


class _Missing:
    """Go's invalid value: what a missing map key evaluates to."""

    def __bool__(self):
        return False


MISSING = _Missing()
_NOFINAL = object()  # no value piped into a command


class _Fail(Exception):
    """An execution error; the evaluator adds Go's position context."""


# ---------------------------------------------------------------- lexer

# Patterns are compiled on first use (re caches them): compiling at import costs ~9 ms.
_TOKEN = r"""
  (?P<ws>[ \t\r\n]+)
| (?P<close>\}\})
| (?P<str>"(?:[^"\\\n]|\\.)*")
| (?P<raw>`[^`]*`)
| (?P<char>'(?:[^'\\\n]|\\.)+')
| (?P<field>(?:\.[A-Za-z_]\w*)+)
| (?P<var>\$\w*(?:\.[A-Za-z_]\w*)*)
| (?P<num>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
              |(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))
| (?P<dot>\.)
| (?P<ident>[A-Za-z_]\w*)
| (?P<op>:=|[|(),=])
"""
_ESCAPE = r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)"
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f",
                   "v": "\v", "\\": "\\", '"': '"', "'": "'"}
_WS = " \t\r\n"


class _Tok:
    __slots__ = ("kind", "val", "pos", "end", "spaced")

    def __init__(self, kind, val, pos, end, spaced):
        self.kind, self.val, self.pos, self.end, self.spaced = kind, val, pos, end, spaced


def _unquote(body: str, src: str, pos: int) -> str:
    def one(m):
        e = m.group(1)
        if e in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[e]
        if e[0] in "xuU":
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8))
        raise _parse_error(src, pos, "invalid syntax")
    return re.sub(_ESCAPE, one, body)


def _lex(src: str) -> list:
    """Split `src` into ("text", str) and ("action", [tokens], pos) items."""
    items, pos, trim_next = [], 0, False
    token = re.compile(_TOKEN, re.X)
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if trim_next:
            text = text.lstrip(_WS)
        if start < 0:
            if text:
                items.append(("text", text))
            return items
        p = start + 2
        if src.startswith("-", p) and src[p + 1:p + 2] in tuple(_WS):
            text, p = text.rstrip(_WS), p + 2
        if text:
            items.append(("text", text))
        if src.startswith("/*", p):  # comment: the whole action
            end = src.find("*/", p + 2)
            if end < 0:
                raise _parse_error(src, start, "unclosed comment")
            p = end + 2
            trim_next = src.startswith(" -}}", p)
            p += 4 if trim_next else 2
            if not src.startswith("}}", p - 2):
                raise _parse_error(src, start, "comment ends before closing delimiter")
            pos = p
            continue
        tokens, spaced = [], False
        while True:
            if p >= len(src):
                raise _parse_error(src, start, "unclosed action")
            m = token.match(src, p)
            if m is None:
                c = src[p]
                msg = ("unterminated quoted string" if c == '"' else
                       "unterminated raw quoted string" if c == "`" else
                       f"bad character U+{ord(c):04X} '{c}'")
                raise _parse_error(src, p, msg)
            kind, val = m.lastgroup, m.group()
            if kind == "ws":
                if src.startswith("-}}", m.end()):
                    pos, trim_next = m.end() + 3, True
                    break
                spaced, p = True, m.end()
                continue
            if kind == "close":
                pos, trim_next = m.end(), False
                break
            if kind == "str":
                kind, val = "lit", _unquote(val[1:-1], src, p)
            elif kind == "raw":
                kind, val = "lit", val[1:-1]
            elif kind == "char":
                kind, val = "lit", ord(_unquote(val[1:-1], src, p)[0])
            elif kind == "num":
                kind, val = "lit", _number(val, src, p)
            elif kind == "op":
                kind = val  # operators are their own kind: "|" "(" ")" "," ":=" "="
            tokens.append(_Tok(kind, val, p, m.end(), spaced))
            spaced, p = False, m.end()
        items.append(("action", tokens, start))


def _number(text: str, src: str, pos: int):
    t = text.replace("_", "")
    try:
        if t.lstrip("+-")[:2].lower() in ("0x", "0b", "0o"):
            return int(t, 0)
        if any(c in t for c in ".eE"):
            return float(t)
        if len(t.lstrip("+-")) > 1 and t.lstrip("+-")[0] == "0":
            return int(t, 8)
        return int(t)
    except ValueError:
        raise _parse_error(src, pos, f'bad number syntax: "{text}"') from None


def _parse_error(src: str, pos: int, msg: str) -> InvalidArgument:
    line = src.count("\n", 0, pos) + 1
    return InvalidArgument(f"template parsing error: template: :{line}: {msg}")


# ---------------------------------------------------------------- parser
# Nodes: ("text", s) ("action", pipe) ("if"|"with"|"range", pipe, body, alt)
# ("break",) ("continue",). A pipe is (decl_vars, is_assign, [commands]); a
# command is (args, pos, end); an arg is ("field", chain) ("var", name,
# chain) ("dot",) ("lit", value) ("nil",) ("func", name) ("pipe", pipe, chain).

class _Parser:
    def __init__(self, src: str):
        self.src, self.items, self.i = src, _lex(src), 0
        self.vars, self.loops = ["$"], 0

    def error(self, pos, msg):
        return _parse_error(self.src, pos, msg)

    def parse(self) -> list:
        nodes, stop = self.list()
        if stop:
            raise self.error(stop[1], f"unexpected {{{{{stop[0]}}}}}")
        return nodes

    def list(self):
        """Parse items until {{end}} / {{else ...}}; returns (nodes, stop)."""
        nodes = []
        while self.i < len(self.items):
            item = self.items[self.i]
            self.i += 1
            if item[0] == "text":
                nodes.append(item)
                continue
            toks, pos = item[1], item[2]
            head = toks[0].val if toks and toks[0].kind == "ident" else None
            if head == "end":
                self.expect_end(toks[1:], pos)
                return nodes, ("end", pos, None)
            if head == "else":
                return nodes, ("else", pos, toks[1:])
            if head in ("if", "with", "range"):
                nodes.append(self.control(head, toks[1:], pos))
            elif head in ("break", "continue"):
                if not self.loops:
                    raise self.error(pos, f"{{{{{head}}}}} outside {{{{range}}}}")
                self.expect_end(toks[1:], pos)
                nodes.append((head,))
            elif head in ("define", "template", "block"):
                raise self.error(pos, f"{{{{{head}}}}} is not supported")
            else:
                nodes.append(("action", self.pipeline(toks, pos, "command", decl_ok=True)))
        return nodes, None

    def expect_end(self, toks, pos):
        if toks:
            raise self.error(pos, f'unexpected "{self.src[toks[0].pos:toks[0].end]}" in action')

    def control(self, kind, toks, pos):
        mark = len(self.vars)
        pipe = self.pipeline(toks, pos, kind, decl_ok=True, pairs=kind == "range")
        self.loops += kind == "range"
        body, stop = self.list()
        self.loops -= kind == "range"
        alt = []
        if stop is None:
            raise self.error(len(self.src), "unexpected EOF")
        if stop[0] == "else":
            rest = stop[2]
            if rest and rest[0].kind == "ident" and rest[0].val in ("if", "with"):
                alt = [self.control(rest[0].val, rest[1:], stop[1])]  # shares our {{end}}
            else:
                self.expect_end(rest, stop[1])
                alt, stop = self.list()
                if stop is None:
                    raise self.error(len(self.src), "unexpected EOF")
                if stop[0] != "end":
                    raise self.error(stop[1], "expected end; found {{else}}")
        del self.vars[mark:]
        return (kind, pipe, body, alt)

    def pipeline(self, toks, pos, context, decl_ok=False, pairs=False):
        decl, assign, k = [], False, 0
        if decl_ok and toks and toks[0].kind == "var":
            names = [toks[0]]
            if pairs and len(toks) > 2 and toks[1].kind == "," and toks[2].kind == "var":
                names.append(toks[2])
            n = len(names) * 2 - 1
            if len(toks) > n and toks[n].kind in (":=", "="):
                if any("." in t.val for t in names):
                    raise self.error(pos, "unexpected . in declaration")
                decl, assign, k = [t.val for t in names], toks[n].val == "=", n + 1
                if assign and decl[0] not in self.vars:
                    raise self.error(pos, f'undefined variable "{decl[0]}"')
        self.toks, self.k = toks, k
        cmds = self.commands(pos, context)
        if self.k < len(toks):
            raise self.error(toks[self.k].pos, "unexpected right paren")
        self.vars.extend(v for v in decl if not assign)
        return (decl, assign, cmds)

    def commands(self, pos, context):
        cmds = []
        while True:
            start = self.toks[self.k].pos if self.k < len(self.toks) else pos
            args = []
            while self.k < len(self.toks) and self.toks[self.k].kind not in ("|", ")"):
                args.append(self.operand(pos))
            if not args:
                raise self.error(pos, f"missing value for {context}")
            cmds.append((args, start, self.toks[self.k - 1].end))
            if self.k < len(self.toks) and self.toks[self.k].kind == "|":
                self.k += 1
                continue
            return cmds

    def operand(self, pos):
        t = self.toks[self.k]
        self.k += 1
        if t.kind == "field":
            return ("field", t.val[1:].split("."))
        if t.kind == "var":
            name, *chain = t.val.split(".")
            if name not in self.vars:
                raise self.error(t.pos, f'undefined variable "{name}"')
            return ("var", name, chain)
        if t.kind == "dot":
            return ("dot",)
        if t.kind == "lit":
            return ("lit", t.val)
        if t.kind == "ident":
            if t.val in ("true", "false"):
                return ("lit", t.val == "true")
            if t.val == "nil":
                return ("nil",)
            if t.val not in _FUNCS:
                raise self.error(t.pos, f'function "{t.val}" not defined')
            return ("func", t.val)
        if t.kind == "(":
            toks = self.toks
            inner = self.commands(pos, "parenthesized pipeline")
            if self.k >= len(toks):
                raise self.error(t.pos, "unclosed left paren")
            self.k += 1  # the ")"
            chain = []
            nxt = toks[self.k] if self.k < len(toks) else None
            if nxt is not None and nxt.kind == "field" and not nxt.spaced:
                chain, self.k = nxt.val[1:].split("."), self.k + 1
            return ("pipe", ([], False, inner), chain)
        raise self.error(t.pos, f'unexpected "{t.val}" in operand')


@functools.lru_cache(maxsize=256)
def _parse(src: str) -> list:
    return _Parser(src).parse()


# ---------------------------------------------------------------- evaluator

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Output(list):
    """The text written so far; more than MAX_OUTPUT characters is an error, so that no
    template (a width in a loop, a pad) can exhaust memory."""

    size = 0

    def append(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise InvalidArgument(f"template: output exceeds {MAX_OUTPUT >> 20} MiB")
        super().append(text)


class _Exec:
    def __init__(self, src, root, strict, header):
        self.src, self.strict, self.header = src, strict, header
        self.vars = [["$", root]]
        self.out = _Output()

    def error(self, pos, end, msg):
        line = self.src.count("\n", 0, pos) + 1
        col = pos - (self.src.rfind("\n", 0, pos) + 1)
        ctx = self.src[pos:end]
        ctx = ctx[:20] + "..." if len(ctx) > 20 else ctx
        return InvalidArgument(
            f'template parsing error: template: :{line}:{col}: executing "" at <{ctx}>: {msg}')

    def walk(self, nodes, dot):
        for node in nodes:
            kind = node[0]
            if kind == "text":
                self.out.append(node[1])
            elif kind == "action":
                value = self.pipe(node[1], dot)
                if not node[1][0]:
                    self.out.append(_show(value))
            elif kind == "break":
                raise _Break
            elif kind == "continue":
                raise _Continue
            else:
                self.control(node, dot)

    def control(self, node, dot):
        kind, pipe, body, alt = node
        mark = len(self.vars)
        if kind != "range":
            value = self.pipe(pipe, dot)
            if value:
                self.walk(body, value if kind == "with" else dot)
            else:
                self.walk(alt, dot)
            del self.vars[mark:]
            return
        decl = pipe[0]
        value = self.pipe((), dot, cmds=pipe[2])
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in _sorted_keys(value)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            pairs = []
        else:
            args, pos, end = pipe[2][0]
            raise self.error(pos, end, f"range can't iterate over {_show(value)}")
        for key, elem in pairs:
            del self.vars[mark:]
            if len(decl) == 2:
                self.vars += [[decl[0], key], [decl[1], elem]]
            elif decl:
                self.vars.append([decl[0], elem])
            try:
                self.walk(body, elem)
            except _Break:
                break
            except _Continue:
                continue
        if not pairs:
            self.walk(alt, dot)
        del self.vars[mark:]

    def pipe(self, pipe, dot, cmds=None):
        value = _NOFINAL
        for cmd in cmds if cmds is not None else pipe[2]:
            value = self.command(cmd, dot, value)
        if cmds is None and pipe[0]:
            if pipe[1]:  # `$x = value` assigns the innermost $x
                next(v for v in reversed(self.vars) if v[0] == pipe[0][0])[1] = value
            else:
                self.vars.append([pipe[0][0], value])
        return value

    def command(self, cmd, dot, final):
        args, pos, end = cmd
        head = args[0]
        try:
            if head[0] == "func":
                return self.call(head[1], args[1:], dot, final)
            if head[0] in ("field", "var", "pipe") and (len(args) > 1 or final is not _NOFINAL):
                return self.arg(head, dot, args[1:], final)
            if head[0] == "nil":
                raise _Fail("nil is not a command")
            value = self.arg(head, dot)
            if len(args) > 1 or final is not _NOFINAL:
                raise _Fail(f"can't give argument to non-function {_show(value)}")
            return value
        except _Fail as e:
            raise self.error(pos, end, str(e)) from None

    def arg(self, node, dot, call_args=(), final=_NOFINAL):
        """Value of one operand; `call_args` go to the last field (a method)."""
        kind = node[0]
        if kind == "dot":
            return dot
        if kind == "lit":
            return node[1]
        if kind == "nil":
            return None
        if kind == "func":
            return self.call(node[1], [], dot, _NOFINAL)
        if kind == "field":
            value, chain = dot, node[1]
        elif kind == "var":
            value = next(v[1] for v in reversed(self.vars) if v[0] == node[1])
            chain = node[2]
        else:
            value, chain = self.pipe(node[1], dot), node[2]
        if (call_args or final is not _NOFINAL) and not chain:
            raise _Fail(f"can't give argument to non-function {_show(value)}")
        for n, name in enumerate(chain):
            last = n == len(chain) - 1
            value = self.field(value, name, call_args if last else (), final if last else _NOFINAL, dot)
        return value

    def field(self, recv, name, call_args, final, dot):
        args = [self.arg(a, dot) for a in call_args]
        if final is not _NOFINAL:
            args.append(final)
        if recv is MISSING:
            return MISSING
        if recv is None:
            raise _Fail(f"nil pointer evaluating interface {{}}.{name}")
        if self.header and isinstance(recv, dict):
            return recv.get(name, name.upper())  # header cells ignore arguments
        if isinstance(recv, dict):
            if name in recv:
                value = recv[name]
            elif type(recv) is not dict and not name.startswith("_") and hasattr(recv, name):
                value = getattr(recv, name)
            elif self.strict:
                raise _Fail(f'map has no entry for key "{name}"')
            else:
                return MISSING
            if args and not callable(value):
                raise _Fail(f"{name} is not a method but has arguments")
        elif isinstance(recv, (str, int, float, list, tuple)) or name.startswith("_") \
                or not hasattr(recv, name):
            raise _Fail(f"can't evaluate field {name} in type {_go_type(recv)}")
        else:
            value = getattr(recv, name)
            if args and not callable(value):
                raise _Fail(f"{name} has arguments but cannot be invoked as function")
        if callable(value):
            try:
                return value(*args)
            except InvalidArgument:
                raise
            except Exception as e:
                raise _Fail(f"error calling {name}: {e}") from None
        return value

    def call(self, name, arg_nodes, dot, final):
        fn, lo, hi = _FUNCS[name]
        n = len(arg_nodes) + (final is not _NOFINAL)
        if n < lo or (hi is not None and n > hi):
            want = f"at least {lo}" if hi is None else str(lo)
            raise _Fail(f"wrong number of args for {name}: want {want} got {n}")
        if name in ("and", "or"):  # short-circuit like Go 1.18+
            value = None
            for node in arg_nodes:
                value = self.arg(node, dot)
                if bool(value) == (name == "or"):
                    return value
            return final if final is not _NOFINAL else value
        args = [self.arg(a, dot) for a in arg_nodes]
        if final is not _NOFINAL:
            args.append(final)
        args = [None if a is MISSING else a for a in args]
        if self.header and name in _HEADER_IDENTITY:
            return args[0]
        try:
            return fn(*args)
        except (_Fail, InvalidArgument):
            raise
        except Exception as e:  # a Python error in a function is the template's error
            raise _call_error(name, str(e)) from None


def render(template: str, data, *, strict: bool = False) -> str:
    """Evaluate Go template `template` against `data` and return the text.

    `data` is JSON-shaped (dict, list, str, int, float, bool, None) or any
    object whose attributes are the fields. A missing map key prints
    `<no value>`, or with `strict=True` fails as `docker inspect` does
    (Go's missingkey=error). Raises InvalidArgument on any error.
    """
    return _execute(template, data, strict=strict, header=False)


def _execute(template, data, strict, header):
    ex = _Exec(template, data, strict, header)
    try:
        ex.walk(_parse(template), data)
    except RecursionError:
        raise InvalidArgument("template parsing error: template: nesting too deep") from None
    return "".join(ex.out)


# ---------------------------------------------------------------- values

def _sorted_keys(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=str)


def _show(v) -> str:
    """Go's fmt %v of a value."""
    if isinstance(v, str):
        return v
    if v is MISSING or v is _NOFINAL:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{_show(k)}:{_show(v[k])}" for k in _sorted_keys(v)) + "]"
    return str(v)


def _go_float(f: float) -> str:
    """%v of a float64 (%g, shortest): exponent form outside [1e-4, 1e6)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign, r = ("-" if f < 0 else ""), repr(abs(f))
    mant, _, exp = r.partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0") or "0"
    e = point - 1
    if e < -4 or e >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _go_type(v) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    for t, name in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
                    (dict, "map[string]interface {}"), ((list, tuple), "[]interface {}")):
        if isinstance(v, t):
            return name
    return type(v).__name__


def _json_default(o):
    if hasattr(o, "__dict__"):
        return {k: v for k, v in vars(o).items() if not k.startswith("_")}
    return str(o)


def _json_numbers(v):
    """Go writes integral floats below 1e21 without a fraction: 1e6 -> 1000000."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, dict):
        return {k: _json_numbers(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_numbers(x) for x in v]
    return v


def _to_json(v) -> str:
    """Go's json.Marshal without HTML escaping (Docker's `json`): compact."""
    out = json.dumps(_json_numbers(v), separators=(",", ":"), ensure_ascii=False, sort_keys=True,
                     default=_json_default)
    return out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---------------------------------------------------------------- functions

def _want(v, kind: str):
    """Check an argument's Go type as text/template does for typed parameters."""
    if kind == "string" and isinstance(v, str):
        return v
    if kind == "int" and isinstance(v, int) and not isinstance(v, bool):
        return v
    if v is None:
        raise _Fail(f"invalid value; expected {kind}")
    raise _Fail(f"wrong type for value; expected {kind}; got {_go_type(v)}")


def _call_error(fn: str, msg: str) -> _Fail:
    return _Fail(f"error calling {fn}: {msg}")


def _compare_kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return None


def _eq(a, *others):
    for b in others:
        if a is None or b is None:
            if a is b:
                return True
            continue
        ka, kb = _compare_kind(a), _compare_kind(b)
        if ka is None or kb is None:
            raise _call_error("eq", "invalid type for comparison")
        if ka != kb:
            raise _call_error("eq", "incompatible types for comparison")
        if a == b:
            return True
    return False


def _ordered(name, test):
    def compare(a, b):
        ka, kb = _compare_kind(a), _compare_kind(b)
        if ka not in ("number", "string") or kb not in ("number", "string"):
            raise _call_error(name, "invalid type for comparison")
        if ka != kb:
            raise _call_error(name, "incompatible types for comparison")
        return test(a, b)
    return compare


def _index(item, *keys):
    for key in keys:
        if item is None:
            raise _call_error("index", "index of untyped nil")
        if isinstance(item, dict):
            # A map of strings is Go's map[string]string (labels, options):
            # a missing key there is "", elsewhere nil.
            missing = "" if item and all(isinstance(v, str) for v in item.values()) else None
            item = item.get(key, missing)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _call_error("index", f"cannot index slice/array with type {_go_type(key)}")
            if not 0 <= key < len(item):
                raise _call_error("index", f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        else:
            raise _call_error("index", f"can't index item of type {_go_type(item)}")
    return item


def _slice(item, *bounds):
    if not isinstance(item, (list, tuple, str)):
        raise _call_error("slice", f"can't slice item of type {_go_type(item)}")
    if not all(isinstance(b, int) for b in bounds) or len(bounds) > 2:
        raise _call_error("slice", "invalid slice indices")
    lo, hi = (list(bounds) + [0, len(item)][len(bounds):])[:2]
    if not 0 <= lo <= hi <= len(item):
        raise _call_error("slice", f"index out of range: {hi}")
    return item[lo:hi]


def _len(v):
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    raise _call_error("len", f"len of type {_go_type(v)}")


def _sprint(*args):
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_show(a))
    return "".join(out)


_VERB = r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.|$)"


_MAX_WIDTH = 1_000_000  # Go's fmt: a width or precision above 10^6 is %!(BADWIDTH) / %!(BADPREC)
MAX_OUTPUT = 64 << 20  # what one template may write, in characters


def _too_large(digits: str) -> bool:
    return len(digits) > 7 or int(digits) > _MAX_WIDTH


def _printf(fmt, *args):
    """Go's fmt.Sprintf for the verbs templates use."""
    fmt = _want(fmt, "string")
    used = 0

    def verb(m):
        nonlocal used
        flags, width, prec, v = m.groups()
        if v == "%":
            return "%"
        if not v:
            return "%!(NOVERB)"
        if used >= len(args):
            return f"%!{v}(MISSING)"
        a = args[used]
        used += 1
        if width and _too_large(width):
            return "%!(BADWIDTH)"
        if prec and _too_large(prec):
            return "%!(BADPREC)"
        s = _format_one(a, v, flags, int(prec) if prec else None if prec is None else 0)
        width = int(width or 0)
        if len(s) < width:
            if "-" in flags:
                s = s.ljust(width)
            elif "0" in flags and _compare_kind(a) == "number":
                sign = s[0] if s[:1] in "+-" else ""
                s = sign + s[len(sign):].rjust(width - len(sign), "0")
            else:
                s = s.rjust(width)
        return s

    out = re.sub(_VERB, verb, fmt, flags=re.S)
    if used < len(args):
        out += "%!(EXTRA " + ", ".join(f"{_go_type(a)}={_show(a)}" for a in args[used:]) + ")"
    return out


def _format_one(a, v, flags, prec):
    bad = f"%!{v}({_go_type(a)}={_show(a)})" if a is not None else f"%!{v}(<nil>)"
    is_int = isinstance(a, int) and not isinstance(a, bool)
    plus = "+" if "+" in flags else ""
    if v == "v":
        return _show(a)
    if v == "s":
        if a is None or isinstance(a, (bool, int, float)):
            return bad
        s = _show(a)
        return s[:prec] if prec is not None else s
    if v == "q":
        if is_int:
            return "'" + chr(a) + "'"
        return json.dumps(a, ensure_ascii=False) if isinstance(a, str) else bad
    if v == "t":
        return _show(a) if isinstance(a, bool) else bad
    if v == "T":
        return _go_type(a)
    if v in "dboxXc" and is_int:
        if v == "c":
            return chr(a)
        return format(a, plus + ("#" if "#" in flags else "") + v)
    if v in "xX" and isinstance(a, str):
        return format(int.from_bytes(a.encode(), "big"), "0%d%s" % (2 * len(a.encode()), v)) \
            if a else ""
    if v in "eEfFgG" and _compare_kind(a) == "number" and not isinstance(a, bool):
        if v in "gG" and prec is None:
            s = _go_float(float(a))
            return (plus if a >= 0 else "") + (s.upper() if v == "G" else s)
        return format(float(a), plus + "." + str(6 if prec is None else prec) + v)
    return bad


def _title(s):
    out, prev_sep = [], True
    for c in _want(s, "string"):
        out.append(c.upper() if prev_sep else c)
        prev_sep = not (c.isalnum() or c == "_")
    return "".join(out)


def _split(s, sep):
    s, sep = _want(s, "string"), _want(sep, "string")
    return list(s) if sep == "" else s.split(sep)


def _join(items, sep):
    if not isinstance(items, (list, tuple)):
        raise _Fail(f"wrong type for value; expected []string; got {_go_type(items)}")
    return _want(sep, "string").join(_show(x) for x in items)


def _truncate(s, n):
    s, n = _want(s, "string"), _want(n, "int")
    return s if len(s) < n else s[:max(n, 0)]


def _pad(s, prefix, suffix):
    s = _want(s, "string")
    prefix, suffix = _want(prefix, "int"), _want(suffix, "int")
    if max(prefix, suffix) > _MAX_WIDTH:
        raise _call_error("pad", f"padding of more than {_MAX_WIDTH} spaces")
    return s and " " * prefix + s + " " * suffix


def _html(*args):
    s = _sprint(*args)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"),
                 ("\0", "\ufffd")):
        s = s.replace(a, b)
    return s


def _urlquery(*args):
    from urllib.parse import quote_plus
    return quote_plus(_sprint(*args))


def _call(fn, *args):
    if not callable(fn):
        raise _call_error("call", f"non-function of type {_go_type(fn)}")
    return fn(*args)


# name -> (function, min args, max args or None)
_FUNCS = {
    "and": (None, 1, None), "or": (None, 1, None),
    "not": (lambda v: not v, 1, 1),
    "len": (_len, 1, 1),
    "index": (_index, 1, None),
    "slice": (_slice, 1, None),
    "print": (_sprint, 0, None),
    "println": (lambda *a: " ".join(_show(x) for x in a) + "\n", 0, None),
    "printf": (_printf, 1, None),
    "eq": (_eq, 1, None),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_ordered("lt", lambda a, b: a < b), 2, 2),
    "le": (_ordered("le", lambda a, b: a <= b), 2, 2),
    "gt": (_ordered("gt", lambda a, b: a > b), 2, 2),
    "ge": (_ordered("ge", lambda a, b: a >= b), 2, 2),
    "html": (_html, 0, None),
    "urlquery": (_urlquery, 0, None),
    "js": (lambda *a: json.dumps(_sprint(*a))[1:-1].replace("'", "\\'"), 0, None),
    "call": (_call, 1, None),
    # Docker's additions (cli/templates)
    "json": (_to_json, 1, 1),
    "split": (_split, 2, 2),
    "join": (_join, 2, 2),
    "title": (_title, 1, 1),
    "lower": (lambda s: _want(s, "string").lower(), 1, 1),
    "upper": (lambda s: _want(s, "string").upper(), 1, 1),
    "pad": (_pad, 3, 3),
    "truncate": (_truncate, 2, 2),
}
# In a table header these return the column title untouched (Docker's HeaderFunctions).
_HEADER_IDENTITY = {"json", "split", "join", "title", "lower", "upper", "truncate"}


# ---------------------------------------------------------------- tables

def _width(s: str) -> int:
    if s.isascii():
        return len(s)
    import unicodedata
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's tabwriter as Docker configures it (minwidth 10, padding 3, spaces).

    Tab-terminated cells in consecutive lines form a column, as wide as its
    widest cell plus padding; the text after a line's last tab is not padded.
    """
    rows = [line.split("\t") for line in text.split("\n")]
    widths = [[] for _ in rows]

    def block(line0, line1, column):
        this = line0
        while this < line1:
            if column >= len(rows[this]) - 1:
                this += 1
                continue
            start, width = this, minwidth
            while this < line1 and column < len(rows[this]) - 1:
                width = max(width, _width(rows[this][column]) + padding)
                this += 1
            for i in range(start, this):
                widths[i].append(width)
            block(start, this, column + 1)

    block(0, len(rows), 0)
    return "\n".join(
        "".join(c + " " * (w - _width(c)) for c, w in zip(cells, ws)) + cells[-1]
        for cells, ws in zip(rows, widths))


def columns(rows: list[list[str]]) -> str:
    """Docker's aligned table: each column its widest cell + 3, at least 10.

    The last column is not padded; every line ends in "\\n"; no rows -> "".
    """
    return _tabwrite("".join("\t".join(map(str, r)) + "\n" for r in rows))


def format_rows(fmt: str, rows: list, headers: dict[str, str]) -> str:
    """Render `rows` with a user's --format, as Docker's formatter does.

    `json` prints each row as one compact JSON line; `table <tmpl>` prints a
    header (the template rendered against `headers`, field -> title) and the
    rows, aligned; any other template prints one rendered line per row.
    As in Docker, the two-character sequences `\\t` and `\\n` in the format
    become a tab and a newline. Bare `table` means the default columns.
    """
    is_table = fmt.startswith("table")
    body = "{{json .}}" if fmt == "json" else fmt[len("table"):] if is_table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    if is_table and not body:
        body = "\t".join("{{.%s}}" % field for field in headers)
    _parse(body)  # a bad template fails even with no rows, as in Docker
    out = [render(body, row) + "\n" for row in rows]
    if not is_table:
        return "".join(out)
    try:
        header = _execute(body, dict(headers), strict=False, header=True)
    except InvalidArgument:
        header = ""  # Docker ignores header errors; the rows report them
    return _tabwrite(header + "\n" + "".join(out))
