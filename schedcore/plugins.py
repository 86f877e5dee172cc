"""Finding plugins and calling their hooks safely.

Plugins come from the ``schedcore`` entry-point group (the built-ins too). Every hook
call goes through pluggy's hook caller (``pm.hook.<name>(...)``), so ``wrapper=True``
implementations and tracing work: set ``SCHEDCORE_TRACE_HOOKS=1`` to log every hook call
at debug level, which helps plugin authors.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from schedcore import hookspecs
from schedcore._hookguard import guard, results_by_plugin
from schedcore.exceptions import PluginError, ValidationError
from schedcore.protocols import Executor, Store

if TYPE_CHECKING:
    from schedcore.model import Schedule

__all__ = [
    "ExecutorFactory",
    "Hooks",
    "PluginManager",
    "StoreFactory",
    "get_plugin_manager",
    "missing_modules",
    "refuse_unknown_options",
]

log = logging.getLogger("schedcore.plugins")


@attrs.frozen(kw_only=True)
class StoreFactory:
    """A store a plugin offers under ``name``; ``create(options)`` builds it.

    ``missing()``, when given, returns None when what the store needs is installed here,
    or one line saying what is missing and how to install it (see :func:`missing_modules`);
    ``schedcore plugins`` shows it.
    """

    name: str
    create: Callable[[Mapping[str, Any]], Store]
    description: str = ""
    missing: Callable[[], str | None] | None = None


@attrs.frozen(kw_only=True)
class ExecutorFactory:
    """An executor a plugin offers under ``name``; ``create(options)`` builds it.

    ``validate(schedule, options)``, when given, checks ``schedule`` (its
    ``executor_options``, and whatever else the executor would refuse in
    :meth:`Executor.validate <schedcore.protocols.Executor.validate>`) for an executor built
    from ``options`` -- without building it or connecting to anything, so that
    ``schedcore add`` and ``sync`` can refuse a schedule that every run would fail, on a
    machine that cannot reach the executor's backend. It raises ValidationError naming the
    option (``executor_options.job_timeout``), or for bad ``options`` ValidationError or
    ConfigError. None: the executor's schedules are checked only by a running scheduler.
    ``missing`` is as for :class:`StoreFactory`.
    """

    name: str
    create: Callable[[Mapping[str, Any]], Executor]
    description: str = ""
    validate: Callable[[Schedule, Mapping[str, Any]], None] | None = None
    missing: Callable[[], str | None] | None = None  #: as :attr:`StoreFactory.missing`


def missing_modules(modules: Sequence[str], extra: str) -> str | None:
    """None when every module of ``modules`` imports here, else ``"not installed: needs redis
    (pip install 'schedcore-engine[redis]')"`` -- the hint installs the distribution's ``extra``.

    For a factory's ``missing``: it imports the modules (a broken install counts as missing,
    with its error), so call it when the answer is wanted, not when the plugin loads.
    """
    import importlib

    from schedcore._dist import install_hint

    absent: list[str] = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            absent.append(module if exc.name == module else f"{module} ({type(exc).__name__}: {exc})")
    if not absent:
        return None
    return f"not installed: needs {', '.join(absent)} ({install_hint(extra)})"


def refuse_unknown_options(kind: str, options: Mapping[str, Any], known: Collection[str]) -> None:
    """Raise ValidationError for the first option of ``options`` (in name order) not in ``known``.

    ``kind`` is ``"store"`` or ``"executor"``; the message names the option, its value and
    the known options (``invalid store.bogus=1: unknown option (known: url, namespace)``),
    the same for every plugin, so that a typo in ``-S``/``-E`` is never silently ignored.
    """
    unknown = sorted(set(options) - set(known))
    if unknown:
        name = unknown[0]
        listed = ", ".join(sorted(known)) if known else "none: it takes no options"
        raise ValidationError(f"{kind}.{name}", options[name], f"unknown option (known: {listed})")


#: Hooks whose failure reaches the caller instead of being logged and skipped: a list of
#: stores, executors or trigger types that cannot be built must not silently lose entries.
STRICT_HOOKS = frozenset({"schedcore_store_factories", "schedcore_executor_factories", "schedcore_trigger_types"})


class PluginManager(pluggy.PluginManager):
    """pluggy's plugin manager, whose implementations of every hook but :data:`STRICT_HOOKS`
    are isolated as they are registered: one that raises is logged naming its plugin and
    the hook, and the other implementations still run (see :mod:`schedcore._hookguard`)."""

    def __init__(self, project_name: str = hookspecs.PROJECT) -> None:
        super().__init__(project_name)
        #: Whether hook calls are traced (``SCHEDCORE_TRACE_HOOKS``): then even hooks that
        #: nobody implements are called, so that the trace shows every event.
        self.tracing = False

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (see :meth:`pluggy.PluginManager.register`), isolating its hooks."""
        registered = super().register(plugin, name)
        if registered is not None:
            guard_hooks(self)
        return registered


def guard_hooks(pm: pluggy.PluginManager) -> None:
    """Isolate every implementation registered on ``pm`` so far (idempotent); a plain
    ``pluggy.PluginManager`` given to a :class:`~schedcore.Scheduler` gets this too."""
    for name, caller in vars(pm.hook).items():
        if isinstance(caller, pluggy.HookCaller):
            for impl in caller.get_hookimpls():
                guard(impl, name, isolate=name not in STRICT_HOOKS)


def get_plugin_manager(*, entry_points: bool = True, plugins: tuple[object, ...] = ()) -> PluginManager:
    """A plugin manager with schedcore's hookspecs, entry-point plugins and ``plugins`` registered."""
    pm = PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        _load_entry_points(pm)
    else:
        from schedcore import _builtin

        if not pm.is_registered(_builtin):
            pm.register(_builtin, name="memory")
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()  # a misspelled hook implementation fails loudly here
    if os.environ.get("SCHEDCORE_TRACE_HOOKS"):
        pm.trace.root.setwriter(lambda message: log.debug("hook: %s", message.rstrip()))
        pm.enable_tracing()
        pm.tracing = True
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    # One entry point at a time (not pluggy's load_setuptools_entrypoints) so that a
    # broken plugin is named in the error, with the distribution it comes from.
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            raise PluginError(
                f"could not load a schedcore plugin: {ep.name!r} ({ep.value}, from {dist}): {type(exc).__name__}: {exc}"
            ) from exc
        pm.register(plugin, name=ep.name)
        if ep.dist is not None:
            pm._plugin_distinfo.append((plugin, ep.dist))  # what `schedcore plugins` shows as the source


class Hooks:
    """Calls hooks through the plugin manager; one failing plugin is logged with its name
    and never breaks the scheduler or the other plugins."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        guard_hooks(pm)  # a plain pluggy manager has not isolated what it holds
        self._traced = getattr(pm, "tracing", False)

    def emit(self, name: str, **kwargs: Any) -> None:
        """Call lifecycle hook ``name`` with ``kwargs`` through pluggy, isolating failures.

        Costs next to nothing for a hook that nobody implements (the engine emits one per
        run dispatched and per outcome), unless hook calls are traced.
        """
        caller = getattr(self.pm.hook, name)
        if not (self._traced or caller.get_hookimpls()):
            return
        try:
            caller(**kwargs)
        except Exception:
            # Only an implementation registered behind our back (directly on a plain pluggy
            # manager after this point) can get here: isolate it from now on.
            log.exception("hook %s raised; continuing", name)
            guard_hooks(self.pm)

    def heard(self, name: str) -> bool:
        """Whether calling hook ``name`` would reach anyone (an implementation, or the trace):
        lets a caller skip building the arguments of a call nobody hears."""
        return self._traced or bool(getattr(self.pm.hook, name).get_hookimpls())

    def results_by_plugin(self, name: str, *, isolate: bool | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call hook ``name`` through pluggy and pair each result with its plugin's name.

        A plugin that raises is logged and has no result, or, for the hooks of
        :data:`STRICT_HOOKS`, its exception reaches the caller; ``isolate`` overrides that.
        """
        caller = getattr(self.pm.hook, name)
        return results_by_plugin(lambda: caller(**kwargs), isolate=isolate)

    def store_factories(self) -> dict[str, StoreFactory]:
        """Every registered store, by name (a later plugin may not shadow an earlier name)."""
        return _collect(self.pm.hook.schedcore_store_factories(), "store")

    def executor_factories(self) -> dict[str, ExecutorFactory]:
        """Every registered executor, by name."""
        return _collect(self.pm.hook.schedcore_executor_factories(), "executor")

    def create_store(self, name: str, options: Mapping[str, Any]) -> Store:
        """Build the store registered as ``name``; PluginError lists the known names."""
        factories = self.store_factories()
        if name not in factories:
            raise PluginError(f"unknown store {name!r}; registered stores: {', '.join(sorted(factories)) or 'none'}")
        return factories[name].create(options)

    def create_executor(self, name: str, options: Mapping[str, Any]) -> Executor:
        """Build the executor registered as ``name``; PluginError lists the known names."""
        return self.executor_factory(name).create(options)

    def executor_factory(self, name: str) -> ExecutorFactory:
        """The factory of the executor registered as ``name``; PluginError lists the known names."""
        factories = self.executor_factories()
        if name not in factories:
            known = ", ".join(sorted(factories)) or "none"
            raise PluginError(f"unknown executor {name!r}; registered executors: {known}")
        return factories[name]


def _collect(results: list[Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for batch in results:
        for factory in batch:
            if factory.name in found:
                raise PluginError(f"two plugins register a {kind} named {factory.name!r}")
            found[factory.name] = factory
    return found
