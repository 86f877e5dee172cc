"""Reading the pickles rq-scheduler stored without running any of their code.

RQ's default serializer pickles a job's ``data`` -- ``(func_name, instance, args, kwargs)``,
zlib-compressed -- and its ``meta``. ``pickle.loads`` on them would let whoever can write to
Redis run code in the migrating process (a ``__reduce__`` naming ``os.system``). Here:

* :class:`_DataUnpickler` is a ``pickle.Unpickler`` whose ``find_class`` never imports or
  returns anything real. A pickle reaches code only through globals (``GLOBAL``,
  ``STACK_GLOBAL``, ``INST``, ``OBJ``, the ``EXT`` registry -- all of which go through
  ``find_class``) and ``persistent_load`` (refused by default). Every global becomes a fresh
  :class:`Opaque` subclass named after it; calling it (``REDUCE``, ``NEWOBJ``, ``INST``) makes
  an inert :class:`Opaque` instance, and ``BUILD``/``APPEND``/``SETITEM`` on one only record
  what they are given. So the only code a payload can reach is the unpickler's own, the
  methods of :class:`Opaque`, and ``hash``/``==`` of the plain builtins the pickle opcodes
  build themselves (str, bytes, int, float, list, tuple, dict, set, frozenset, bytearray).
  ``set``, ``frozenset``, ``bytearray`` and ``_codecs.encode(text, "latin1")`` (how pickle
  protocols 0-2 spell bytes and sets) are rebuilt by our own code, without the real globals.
* Sizes are bounded: the decompressed data (:data:`MAX_DATA`), the distinct globals named
  (:data:`MAX_GLOBALS`), the nesting (:data:`MAX_NESTING`, checked by :func:`_check_nesting`
  walking the opcodes with ``pickletools`` *before* anything is built: hashing a tuple
  nested a million levels deep -- a few bytes per level -- would overflow the C stack, and
  no ``RecursionError`` guards it) and the number of values reachable in the result
  (:data:`MAX_VALUES`), shared references included -- a small pickle can reference one list
  from itself many times over, and JSON would expand every copy.
* :func:`not_json_safe` names the first part of a decoded value that JSON cannot carry
  (an :class:`Opaque` object, bytes, a set, a non-string key, NaN, a cycle).

A pickle that cannot be read this way (a bad opcode, a truncated stream, too large) raises
:class:`UnreadablePickle`; the caller reports the job and goes on with the others.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import zlib
from typing import Any, ClassVar

__all__ = [
    "MAX_DATA",
    "MAX_GLOBALS",
    "MAX_NESTING",
    "MAX_VALUES",
    "Opaque",
    "UnreadablePickle",
    "decode_data",
    "loads",
    "not_json_safe",
]

#: Largest decompressed pickle read (bytes): a zlib bomb stops here.
MAX_DATA = 4 * 1024 * 1024
#: Most distinct globals (``module.name``) one pickle may name; each becomes a class here.
MAX_GLOBALS = 1000
#: Deepest nesting of containers in a pickle.
MAX_NESTING = 1000
#: Most values (containers and scalars, every reference counted) a decoded pickle may hold.
MAX_VALUES = 200_000


class UnreadablePickle(ValueError):
    """The bytes are not a pickle this decoder can read safely (the message says why)."""


class Opaque:
    """Stands for an object of a class the pickle named: nothing of that class is imported or run."""

    #: ``module.name`` of the global the pickle referred to (set on each generated subclass).
    global_name: ClassVar[str] = "?"
    # class-level defaults: NEWOBJ makes instances without calling __init__
    args: tuple[Any, ...] = ()
    kwargs: Any = None
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:  # BUILD
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) on such an object
        pass

    def append(self, value: Any) -> None:  # APPEND(S)
        pass

    def extend(self, values: Any) -> None:  # APPENDS (protocol 5 prefers extend)
        pass

    def __repr__(self) -> str:
        return f"<{self.global_name} object>"


def _set(items: Any = ()) -> Any:
    return set(_plain_iterable(items))


def _frozenset(items: Any = ()) -> Any:
    return frozenset(_plain_iterable(items))


def _bytearray(value: Any = b"", *rest: Any) -> Any:
    if isinstance(value, (bytes, bytearray)) and not rest:
        return bytearray(value)
    return _opaque("builtins", "bytearray")(value, *rest)


def _encode(text: Any = "", encoding: Any = "utf-8", *rest: Any) -> Any:
    # protocol 0-2 pickles spell ``b"..."`` as _codecs.encode("...", "latin1"); nothing else
    # is honoured: another codec name would make codecs import a module by that name
    if isinstance(text, str) and encoding in ("latin1", "latin-1") and not rest:
        return text.encode("latin-1")
    return _opaque("_codecs", "encode")(text, encoding, *rest)


def _plain_iterable(items: Any) -> Any:
    # only what the opcodes themselves build: iterating anything else could run its code
    if isinstance(items, (list, tuple, set, frozenset, str, bytes)):
        return items
    raise UnreadablePickle("a set built from something other than a list or tuple")


_REBUILT: dict[tuple[str, str], Any] = {
    ("builtins", "set"): _set,
    ("__builtin__", "set"): _set,
    ("builtins", "frozenset"): _frozenset,
    ("__builtin__", "frozenset"): _frozenset,
    ("builtins", "bytearray"): _bytearray,
    ("__builtin__", "bytearray"): _bytearray,
    ("_codecs", "encode"): _encode,
}


def _opaque(module: str, name: str) -> type[Opaque]:
    label = f"{module}.{name}"
    return type("Opaque", (Opaque,), {"global_name": label, "__qualname__": f"Opaque[{label}]"})


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global: see the module's docstring for why this is safe."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self._classes: dict[tuple[str, str], type[Opaque]] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (str(module), str(name))
        rebuilt = _REBUILT.get(key)
        if rebuilt is not None:
            return rebuilt
        found = self._classes.get(key)
        if found is None:
            if len(self._classes) >= MAX_GLOBALS:
                raise UnreadablePickle(f"names more than {MAX_GLOBALS} globals")
            found = self._classes[key] = _opaque(*key)
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnreadablePickle("persistent ids are not supported")


def loads(data: bytes) -> Any:
    """Decode a pickle into plain values and :class:`Opaque` stand-ins; runs none of its code."""
    if len(data) > MAX_DATA:
        raise UnreadablePickle(f"larger than {MAX_DATA} bytes")
    _check_nesting(data)
    try:
        value = _DataUnpickler(io.BytesIO(data)).load()
    except UnreadablePickle:
        raise
    except RecursionError:
        raise UnreadablePickle("nested too deeply") from None
    except Exception as exc:  # every malformed stream: UnpicklingError, EOFError, ValueError...
        raise UnreadablePickle(f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    _count_values(value)
    return value


_MARK = -1  # a MARK on the simulated stack (depths are >= 0)
_IN_PLACE = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def _check_nesting(data: bytes) -> None:
    """Refuse a pickle whose values nest deeper than :data:`MAX_NESTING`, reading only opcodes.

    Simulates the unpickler's stack with each value's nesting depth in place of the value:
    a container built from values is one deeper than the deepest of them; one filled in
    place (APPEND, SETITEM, BUILD...) is at least one deeper than what it receives; the memo
    keeps the depth stored. Nothing is built, so nothing can run or recurse.
    """
    stack: list[int] = []
    memo: dict[Any, int] = {}

    def pop() -> int:
        if not stack:
            raise UnreadablePickle("not a readable pickle (stack underflow)")
        return stack.pop()

    def pop_to_mark() -> list[int]:
        items: list[int] = []
        while (item := pop()) != _MARK:
            items.append(item)
        return items

    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name == "MARK":
                stack.append(_MARK)
            elif name in _PUTS:
                memo[arg] = stack[-1] if stack else 0
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else 0
            elif name in _GETS:
                stack.append(memo.get(arg, 0))
            elif name == "DUP":
                stack.append(stack[-1] if stack else 0)
            elif name == "STOP":
                return
            else:
                before = op.stack_before
                if pickletools.stackslice in before:
                    children = pop_to_mark()
                    prefix = [pop() for _ in range(before.index(pickletools.markobject))]
                else:
                    children = [pop() for _ in before]
                    prefix = []
                if name in _IN_PLACE:
                    container = (prefix or children).pop()  # the deepest-in-stack operand
                    depth = max([container, *(c + 1 for c in children if c != _MARK)])
                else:
                    depth = 1 + max([*children, *prefix], default=-1)
                if depth > MAX_NESTING:
                    raise UnreadablePickle(f"nested more than {MAX_NESTING} levels deep")
                stack.extend(depth for _ in op.stack_after)
    except ValueError as exc:  # pickletools: a bad opcode or a truncated argument
        if isinstance(exc, UnreadablePickle):
            raise
        raise UnreadablePickle(f"not a readable pickle ({exc})") from None


def decode_data(raw: bytes) -> Any:
    """RQ's ``data`` field: zlib-compressed (or, as RQ also accepts, plain) pickle bytes."""
    decompressor = zlib.decompressobj()
    try:
        data = decompressor.decompress(raw, MAX_DATA + 1)
    except zlib.error:
        data = raw  # RQ's own fallback: an uncompressed pickle
    else:
        if len(data) > MAX_DATA or decompressor.unconsumed_tail:
            raise UnreadablePickle(f"decompresses to more than {MAX_DATA} bytes")
    return loads(data)


def _count_values(value: Any) -> None:
    """Refuse a value that expands to more than :data:`MAX_VALUES` values (each shared
    reference counted again, as JSON would write it; a cycle is left to :func:`not_json_safe`)."""
    stack: list[tuple[Any, frozenset[int]]] = [(value, frozenset())]
    seen = 0
    while stack:
        item, above = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise UnreadablePickle(f"holds more than {MAX_VALUES} values")
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = list(item)
        elif isinstance(item, Opaque):
            children = [item.args, item.kwargs, item.state]
        else:
            continue
        if id(item) in above:
            continue
        inside = above | {id(item)}
        stack.extend((child, inside) for child in children)


def _describe(value: Any) -> str:
    if isinstance(value, Opaque):
        return f"a {value.global_name} object"
    return f"a {type(value).__name__}"


def not_json_safe(value: Any, path: str) -> str | None:
    """Where and why ``value`` (a decoded pickle) cannot be stored as JSON; None when it can.

    ``path`` names the value (``args[1]``); the answer names the part, e.g.
    ``"kwargs['when'] is a datetime.datetime object"``. Tuples count as lists (JSON arrays),
    as the compatible scheduler treats them.
    """
    stack: list[tuple[Any, str, frozenset[int]]] = [(value, path, frozenset())]
    while stack:
        item, where, above = stack.pop()
        if item is None or isinstance(item, (bool, int, str)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{where} is {item!r} (JSON has no NaN or infinity)"
            continue
        if isinstance(item, (list, tuple, dict)):
            if id(item) in above:
                return f"{where} contains itself"
            inside = above | {id(item)}
            if isinstance(item, dict):
                for key, child in reversed(list(item.items())):
                    if not isinstance(key, str):
                        return f"{where} has a key that is not a string ({_describe(key)})"
                    stack.append((child, f"{where}[{key!r}]", inside))
            else:
                stack.extend((child, f"{where}[{i}]", inside) for i, child in reversed(list(enumerate(item))))
            continue
        return f"{where} is {_describe(item)}"
    return None
