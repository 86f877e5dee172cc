"""Isolating each hook implementation, so that one failing plugin never stops the others.

pluggy calls every implementation of a hook in one loop, and an exception from one
ends that loop: the implementations after it are not called and the exception reaches
the caller. schedcore wants the opposite for its lifecycle hooks -- log the failure
with the plugin's name and carry on -- without giving up what pluggy's own call path
gives (``SCHEDCORE_TRACE_HOOKS`` tracing, ``wrapper=True`` and ``hookwrapper=True``
implementations). So each implementation's function is replaced, when it is
registered, by a guarded one that calls it and swallows (after logging) what it raises;
pluggy still does the calling.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Generator
from typing import Any

import pluggy

__all__ = ["guard", "is_guarded", "plugin_name", "results_by_plugin"]

log = logging.getLogger("schedcore.plugins")

_GUARDED = "__schedcore_guarded__"

#: While :func:`results_by_plugin` runs a hook call: where each guarded implementation
#: puts ``(plugin name, result)``, so that results can be told apart by plugin.
_RESULTS: contextvars.ContextVar[list[tuple[str, object]] | None] = contextvars.ContextVar(
    "schedcore_hook_results", default=None
)
#: While :func:`results_by_plugin` runs a hook call: whether a failing implementation is
#: isolated (True) or its exception reaches the caller (False); None: the hook's default.
_ISOLATE: contextvars.ContextVar[bool | None] = contextvars.ContextVar("schedcore_hook_isolate", default=None)


def is_guarded(impl: pluggy.HookImpl) -> bool:
    """Whether ``impl`` already goes through :func:`guard`."""
    return getattr(impl.function, _GUARDED, False)


def guard(impl: pluggy.HookImpl, hook_name: str, *, isolate: bool = True) -> None:
    """Make ``impl`` log and swallow its own exceptions (idempotent).

    A plain implementation that raises returns None (pluggy leaves it out of the
    results). A wrapper that raises before its ``yield`` is passed through as if it
    had not been there; one that raises after it leaves the result as it was.

    With ``isolate=False`` (a hook whose failure must reach its caller) a plain
    implementation's exceptions pass through, unless a :func:`results_by_plugin` call asks
    for isolation, and wrappers are left as they are.
    """
    if is_guarded(impl):
        return
    name = plugin_name(impl)
    if impl.wrapper or impl.hookwrapper:
        if not isolate:
            return
        guard_wrapper = _guard_wrapper if impl.wrapper else _guard_old_wrapper
        function = guard_wrapper(impl.function, name, hook_name)
    else:
        function = _guard_plain(impl.function, name, hook_name, isolate)
    setattr(function, _GUARDED, True)
    # HookImpl.function is documented and plain (slots): pluggy reads it on every call,
    # so replacing it is how the guard joins pluggy's own call loop.
    setattr(impl, "function", function)  # noqa: B010 -- the attribute is Final for type checkers only


def plugin_name(impl: pluggy.HookImpl) -> str:
    """The name ``impl``'s plugin is registered under, or, for an object registered without
    a name (pluggy then names it by its ``id``), its class."""
    plugin = impl.plugin
    if impl.plugin_name == str(id(plugin)):
        cls = type(plugin)
        return f"{cls.__module__}.{cls.__qualname__}"
    return impl.plugin_name


def results_by_plugin(call: Callable[[], list[Any]], *, isolate: bool | None = None) -> list[tuple[str, Any]]:
    """Run ``call`` (a hook call through pluggy) and pair each result with the name of the
    plugin that returned it, in pluggy's order. A result a wrapper put in the list instead
    is named after no plugin (``"?"``). ``isolate`` overrides whether a failing plain
    implementation is logged and skipped (None: as its hook does it)."""
    collected: list[tuple[str, object]] = []
    token = _RESULTS.set(collected)
    isolating = _ISOLATE.set(isolate)
    try:
        results = call()
    finally:
        _ISOLATE.reset(isolating)
        _RESULTS.reset(token)
    names = {id(result): name for name, result in collected}
    return [(names.get(id(result), "?"), result) for result in results]


def _report(plugin_name: str, hook_name: str, what: str = "raised") -> None:
    log.exception("plugin %r %s in hook %s; continuing", plugin_name, what, hook_name)


def _report_misuse(plugin_name: str, hook_name: str, what: str) -> None:
    log.error("plugin %r %s in hook %s; continuing", plugin_name, what, hook_name)


def _guard_plain(function: Callable[..., Any], plugin_name: str, hook_name: str, isolate: bool) -> Callable[..., Any]:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except Exception:
            asked = _ISOLATE.get()
            if not (isolate if asked is None else asked):
                raise
            _report(plugin_name, hook_name)
            return None
        sink = _RESULTS.get()
        if sink is not None and result is not None:
            sink.append((plugin_name, result))
        return result

    return guarded


def _start(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], plugin_name: str, hook_name: str
) -> Generator[None, Any, Any] | None:
    """Run a wrapper up to its ``yield``; None (reported) if it raised or did not yield."""
    try:
        inner: Generator[None, Any, Any] = function(*args, **kwargs)
        next(inner)
    except StopIteration:
        _report_misuse(plugin_name, hook_name, "did not yield")
        return None
    except Exception:
        _report(plugin_name, hook_name)
        return None
    return inner


def _finish(inner: Generator[None, Any, Any], sent: Any, plugin_name: str, hook_name: str, default: Any) -> Any:
    """Resume a wrapper with ``sent``; what it returns, or ``default`` (reported) if it
    raised or yielded again."""
    try:
        inner.send(sent)
    except StopIteration as stop:
        return stop.value
    except Exception:
        _report(plugin_name, hook_name)
        return default
    _report_misuse(plugin_name, hook_name, "yielded twice")
    inner.close()
    return default


def _guard_wrapper(function: Callable[..., Any], plugin_name: str, hook_name: str) -> Callable[..., Any]:
    """A new-style wrapper (``wrapper=True``): it gets the result (or has the exception
    thrown in) at its ``yield`` and returns the result."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
        inner = _start(function, args, kwargs, plugin_name, hook_name)
        if inner is None:
            return (yield)  # as if the wrapper were not there
        try:
            result = yield
        except Exception as exc:
            # The call failed inside this wrapper (an implementation that is not
            # guarded): the plugin sees it as pluggy would show it, and it goes on.
            try:
                inner.throw(exc)
            except StopIteration as stop:
                return stop.value
            except Exception as raised:
                if raised is exc:
                    raise
                _report(plugin_name, hook_name)
                raise exc from None
            _report_misuse(plugin_name, hook_name, "yielded twice")
            inner.close()
            raise
        return _finish(inner, result, plugin_name, hook_name, result)

    return guarded


def _guard_old_wrapper(function: Callable[..., Any], plugin_name: str, hook_name: str) -> Callable[..., Any]:
    """An old-style wrapper (``hookwrapper=True``): it gets a ``pluggy.Result`` at its
    ``yield`` and may change it; what it returns is ignored."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, None]:
        inner = _start(function, args, kwargs, plugin_name, hook_name)
        outcome = yield
        if inner is not None:
            _finish(inner, outcome, plugin_name, hook_name, None)

    return guarded
