"""Trigger types by name: how a stored ``{"type": ...}`` dict finds the class that reads it.

Every store keeps a schedule's trigger as its ``to_dict()`` and reads it back with
:func:`schedcore.triggers.trigger_from_dict`, which looks the ``"type"`` up here. Types are
registered by plugins through the ``schedcore_trigger_types`` hook, the built-in ``at``,
``interval`` and ``cron`` too (:mod:`schedcore._builtin`); code may also call
:func:`register_trigger_type`.

How the process-wide registry is filled (so that decoding never depends on the order in
which plugins were loaded, and works without any plugin manager):

1. On first use it asks the built-in plugin (``schedcore_trigger_types`` of
   :mod:`schedcore._builtin`), so ``at``, ``interval`` and ``cron`` are always known.
2. The first time a name is not known, it loads the ``schedcore`` entry-point plugins once
   (as the default plugin manager does) and asks them. A plugin that cannot be loaded, or
   that claims a name another plugin already claimed, is logged and left out; the other
   types stay usable.
3. Every :class:`~schedcore.Scheduler` registers the types of its own plugin manager, so a
   plugin passed in code (``Scheduler(plugins=[...])``) is known to every store it decodes
   from. Code that decodes without a scheduler (a store used alone, a test) calls
   :func:`register_trigger_type` or :func:`register_plugin_manager`.

Security: a type name read from stored data only ever selects among registered types --
nothing is imported because stored data names it. An unregistered name is a
:class:`~schedcore.exceptions.ValidationError` (a store reports it as
:class:`~schedcore.exceptions.CorruptScheduleData` for that schedule only) saying that the
plugin providing it may be missing.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from schedcore.exceptions import PluginError, ValidationError

if TYPE_CHECKING:
    import pluggy

    from schedcore.protocols import Trigger

__all__ = [
    "TriggerRegistry",
    "TriggerType",
    "default_registry",
    "register_plugin_manager",
    "register_trigger_type",
]

log = logging.getLogger("schedcore.plugins")

#: What a trigger type name may look like: it is stored with every schedule and typed in files.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}\Z")


def _check_name(_: Any, __: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise PluginError(f"trigger type name {value!r}: expected 1-50 of a-z, 0-9 and _, starting with a letter")


@attrs.frozen(kw_only=True)
class TriggerType:
    """A trigger type a plugin registers: ``to_dict()["type"] == name`` for its triggers.

    ``cls`` is the trigger class. ``load(fields)`` builds a trigger from its ``to_dict()``
    without the ``"type"`` key and raises :class:`~schedcore.exceptions.ValidationError`
    naming the field for bad data; it may be left out for an ``attrs`` class, whose
    keyword arguments are then the dict's keys (unknown and missing keys are refused).
    ``load`` receives data read from a store: it must build the trigger from the values
    only -- never import, evaluate or unpickle anything they name.
    """

    name: str = attrs.field(validator=_check_name)
    cls: type[Any]
    load: Callable[[Mapping[str, Any]], Trigger] | None = attrs.field(default=None, eq=False)
    description: str = ""

    def __attrs_post_init__(self) -> None:
        if self.load is None and not attrs.has(self.cls):
            raise PluginError(f"trigger type {self.name!r}: {self.cls.__qualname__} is not an attrs class; pass load=")

    def build(self, fields: Mapping[str, Any]) -> Trigger:
        """The trigger ``fields`` (a ``to_dict()`` without ``"type"``) describe."""
        if self.load is not None:
            return self.load(fields)
        return _load_attrs(self.cls, self.name, fields)


def _load_attrs(cls: type[Any], kind: str, fields: Mapping[str, Any]) -> Trigger:
    declared = [a for a in attrs.fields(cls) if a.init]  # (derived fields are not stored)
    unknown = sorted(set(fields) - {a.name for a in declared})
    if unknown:
        raise ValidationError(f"trigger.{unknown[0]}", fields[unknown[0]], f"unknown key for a {kind} trigger")
    missing = [a.name for a in declared if a.default is attrs.NOTHING and a.name not in fields]
    if missing:
        raise ValidationError(f"trigger.{missing[0]}", None, f"missing from a {kind} trigger")
    trigger: Trigger = cls(**fields)
    return trigger


class TriggerRegistry:
    """Trigger types by name, filled as the module docstring describes. Thread-safe."""

    def __init__(self, *, entry_points: bool = True) -> None:
        self._types: dict[str, tuple[TriggerType, str]] = {}  # name -> (type, who registered it)
        self._lock = threading.RLock()
        self._booted = False
        self._entry_points = entry_points  # False: never load installed plugins (tests)
        self._refused: dict[str, str] = {}  # name -> why entry-point plugins could not have it

    def register(self, ttype: TriggerType, *, source: str = "code") -> None:
        """Register ``ttype``; the same class again under its name is a no-op.

        Raises :class:`~schedcore.exceptions.PluginError` when the name belongs to another class.
        """
        if not isinstance(ttype, TriggerType):
            raise PluginError(f"{source}: expected schedcore.trigger_types.TriggerType, got {type(ttype).__name__}")
        with self._lock:
            self._boot()
            self._add(ttype, source)

    def _add(self, ttype: TriggerType, source: str) -> None:
        known = self._types.get(ttype.name)
        if known is None:
            self._types[ttype.name] = (ttype, source)
            self._refused.pop(ttype.name, None)
        elif known[0].cls is not ttype.cls:
            raise PluginError(
                f"two plugins register a trigger type named {ttype.name!r}: "
                f"{known[1]} ({_qualname(known[0].cls)}) and {source} ({_qualname(ttype.cls)})"
            )

    def register_plugin_manager(self, pm: pluggy.PluginManager) -> None:
        """Register every type the plugins of ``pm`` return from ``schedcore_trigger_types``.

        A plugin whose name conflicts raises :class:`~schedcore.exceptions.PluginError`.
        """
        with self._lock:
            self._boot()
            for ttype, source in _collect(pm):
                self._add(ttype, source)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (for tests that register a type of their own)."""
        with self._lock:
            self._types.pop(name, None)

    def get(self, name: str) -> TriggerType | None:
        """The type registered as ``name``; loads the entry-point plugins once when it is unknown."""
        if self._booted:  # the decode path: a plain dict read, no lock
            known = self._types.get(name)
            if known is not None:
                return known[0]
        with self._lock:
            self._boot()
            if name not in self._types:
                self._load_entry_points()
            found = self._types.get(name)
            return found[0] if found is not None else None

    def names(self) -> list[str]:
        """Every registered name, sorted (after loading the entry-point plugins)."""
        with self._lock:
            self._boot()
            self._load_entry_points()
            return sorted(self._types)

    def sources(self) -> dict[str, tuple[TriggerType, str]]:
        """Every registered type with the plugin that registered it, by name."""
        with self._lock:
            self.names()
            return dict(self._types)

    def missing(self, name: str) -> str:
        """Why ``name`` is not registered, in words for an error message."""
        with self._lock:
            if name in self._refused:
                return self._refused[name]
            known = ", ".join(sorted(self._types)) or "none"
        return (
            f"no trigger type of that name is registered (registered: {known}); the plugin that provides it "
            "may be missing: install it (its `schedcore` entry point implements schedcore_trigger_types) "
            "or register it with schedcore.trigger_types.register_trigger_type"
        )

    def _boot(self) -> None:
        if self._booted:
            return
        from schedcore.plugins import get_plugin_manager

        # The built-in plugin through a plugin manager, exactly as a third-party plugin's types arrive.
        for ttype, source in _collect(get_plugin_manager(entry_points=False)):
            self._types[ttype.name] = (ttype, source)
        self._booted = True

    def _load_entry_points(self) -> None:
        if not self._entry_points:
            return
        self._entry_points = False  # once per process: a miss must not re-import on every decode
        import pluggy

        from schedcore import hookspecs

        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken plugin costs its own types, not everyone's
                log.error(
                    "schedcore plugin %r (%s) could not be loaded for its trigger types: %s", ep.name, ep.value, exc
                )
        found = _collect(pm, strict=False)
        claims: dict[str, list[tuple[TriggerType, str]]] = {}
        for ttype, source in found:
            if ttype.name in self._types:
                known = self._types[ttype.name]
                if known[0].cls is not ttype.cls:
                    log.error(
                        "plugin %s registers trigger type %r, which %s already registers; ignored",
                        source,
                        ttype.name,
                        known[1],
                    )
                continue
            claims.setdefault(ttype.name, []).append((ttype, source))
        for name, offers in claims.items():
            if len({id(t.cls) for t, _ in offers}) > 1:
                # Taking either would depend on load order: neither is used, and both are named.
                who = " and ".join(source for _, source in offers)
                self._refused[name] = f"two plugins register a trigger type of that name ({who}); uninstall one"
                log.error("trigger type %r is registered by %s; neither is used", name, who)
                continue
            self._types[name] = offers[0]


def _collect(pm: pluggy.PluginManager, *, strict: bool = True) -> list[tuple[TriggerType, str]]:
    """``(type, plugin name)`` for every type ``pm``'s plugins register, checked.

    The hook is called through pluggy with each result paired with its plugin, so that a
    conflict names both plugins and, when not ``strict``, a plugin that fails here loses its
    own types only (logged).
    """
    from schedcore.plugins import Hooks

    found: list[tuple[TriggerType, str]] = []
    for name, result in Hooks(pm).results_by_plugin("schedcore_trigger_types", isolate=not strict):
        source = f"plugin {name!r}"
        try:
            if not isinstance(result, (list, tuple)):
                raise PluginError(f"{source}: schedcore_trigger_types must return a list, got {type(result).__name__}")
            bad = [t for t in result if not isinstance(t, TriggerType)]
            if bad:
                raise PluginError(
                    f"{source}: schedcore_trigger_types returned a {type(bad[0]).__name__}, not a TriggerType"
                )
        except PluginError as exc:
            if strict:
                raise
            log.error("%s failed in schedcore_trigger_types; its trigger types are not available: %s", source, exc)
            continue
        found += [(ttype, source) for ttype in result]
    return found


def _qualname(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_default = TriggerRegistry()


def default_registry() -> TriggerRegistry:
    """The process-wide registry :func:`schedcore.triggers.trigger_from_dict` reads."""
    return _default


def register_trigger_type(ttype: TriggerType) -> None:
    """Register ``ttype`` in the process-wide registry (idempotent for the same class)."""
    _default.register(ttype)


def register_plugin_manager(pm: pluggy.PluginManager) -> None:
    """Register the trigger types of ``pm``'s plugins in the process-wide registry."""
    _default.register_plugin_manager(pm)
