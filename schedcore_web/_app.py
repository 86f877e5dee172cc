"""The Flask blueprint: the pages and the JSON API under ``/api/``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs
from flask import Blueprint, Flask, Response, abort, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from schedcore._time import parse_instant
from schedcore.cli import _schedule_zone
from schedcore.exceptions import SchedcoreError, ScheduleNotFound, StoreUnavailable, ValidationError
from schedcore.scheduler import Scheduler
from schedcore_web._data import STATUSES, Activity, list_page, overview, schedule_detail
from schedcore_web._security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    Auth,
    CsrfSigner,
    host_allowed,
    origin_matches,
)

__all__ = ["WebConfig", "create_app", "create_blueprint"]

log = logging.getLogger("schedcore.web")

#: The actions of a schedule's page (POST only); what each one's confirmation says.
ACTIONS = ("pause", "resume", "trigger", "remove", "backfill")
_MESSAGES = {
    "pause": "Paused.",
    "resume": "Resumed.",
    "trigger": "Triggered: a running scheduler dispatches the run now.",
    "backfill": "Backfill queued.",
    "remove": "Removed.",
}
_MAX_PAGE = 500
_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@attrs.frozen(kw_only=True)
class WebConfig:
    """How the dashboard behaves.

    ``read_only`` turns every action off (pages and API). ``auth`` (an :class:`Auth`)
    requires a token or basic auth for every request. ``allowed_hosts`` restricts the
    ``Host`` header (None: any; ``schedcore web`` on loopback without auth sets the
    loopback names, against DNS rebinding). ``csrf_secret`` signs CSRF tokens (default:
    random per process). ``page_size`` is the schedules per page; ``scan_budget`` bounds
    the schedules one filtered page reads; ``activity`` computes the overview's chart.
    """

    read_only: bool = False
    auth: Auth | None = None
    allowed_hosts: frozenset[str] | None = None
    csrf_secret: bytes | None = None
    page_size: int = 50
    scan_budget: int = 5000
    activity: Activity = attrs.field(factory=Activity)
    clock: Callable[[], datetime] = attrs.field(default=lambda: datetime.now(timezone.utc))


def create_blueprint(scheduler: Scheduler, config: WebConfig | None = None, *, name: str = "schedcore") -> Blueprint:
    """The dashboard as a Flask blueprint on ``scheduler`` (its store is what is shown and
    changed; it need not run: a running scheduler elsewhere dispatches what is triggered).

    Mount it in an existing app with ``app.register_blueprint(bp, url_prefix="/schedcore")``.
    """
    cfg = config or WebConfig()
    csrf = CsrfSigner(cfg.csrf_secret)
    bp = Blueprint(name, __name__, template_folder="templates", static_folder="static", static_url_path="/static")

    # -- every request -------------------------------------------------------------------

    @bp.before_request
    def guard() -> Response | None:
        if not host_allowed(request.host, cfg.allowed_hosts):
            return _error(400, f"this dashboard only answers to {', '.join(sorted(cfg.allowed_hosts or ()))}")
        g.auth_kind = None
        if cfg.auth is not None and cfg.auth.enabled:
            g.auth_kind = cfg.auth.check(request.headers.get("Authorization"))
            if g.auth_kind is None:
                response = _error(401, "authentication required")
                response.headers["WWW-Authenticate"] = 'Basic realm="schedcore", charset="UTF-8"'
                return response
        cookie = request.cookies.get(CSRF_COOKIE)
        g.csrf_token = cookie if csrf.valid(cookie) else csrf.new()
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        if cfg.read_only:
            return _error(403, "this dashboard is read-only")
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" and not origin_matches(origin, request.host):
            return _error(403, "cross-origin request refused")
        if g.auth_kind == "bearer":
            return None  # a header browsers never send on their own: no cross-site forgery
        submitted = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
        if not csrf.matches(cookie, submitted):
            return _error(403, "missing or wrong CSRF token (reload the page; API clients: GET /api/csrf)")
        return None

    @bp.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        token = g.get("csrf_token")
        if token and request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure)
        return response

    @bp.app_template_global("csrf_token")
    def csrf_token() -> str:
        return str(g.get("csrf_token", ""))

    def _error(status: int, message: str) -> Response:
        if _wants_json():
            response = jsonify({"error": message})
        else:
            response = Response(
                render_template("schedcore/error.html", status=status, message=message, cfg=cfg), mimetype="text/html"
            )
        response.status_code = status
        return response

    @bp.errorhandler(ScheduleNotFound)
    def not_found(exc: ScheduleNotFound) -> Response:
        return _error(404, str(exc))

    @bp.errorhandler(ValidationError)
    def invalid(exc: ValidationError) -> Response:
        if _wants_json():
            response = jsonify({"error": str(exc), "field": exc.field})
            response.status_code = 400
            return response
        return _error(400, str(exc))

    @bp.errorhandler(StoreUnavailable)
    def unavailable(exc: StoreUnavailable) -> Response:
        return _error(503, f"the store is unavailable: {exc}")

    @bp.errorhandler(SchedcoreError)
    def failed(exc: SchedcoreError) -> Response:
        log.warning("web request %s %s failed: %s", request.method, request.path, exc)
        return _error(500, str(exc))

    # -- reading -------------------------------------------------------------------------

    def _list_args() -> dict[str, Any]:
        status = request.args.get("status", "all")
        if status not in STATUSES:
            raise ValidationError("status", status, f"expected one of {', '.join(STATUSES)}")
        limit_text = request.args.get("limit", str(cfg.page_size))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= _MAX_PAGE:
            raise ValidationError("limit", limit_text, f"expected a whole number from 1 to {_MAX_PAGE}")
        return {
            "after": request.args.get("after") or None,
            "limit": int(limit_text),
            "text": request.args.get("q", "")[:200],
            "status": status,
        }

    def _stored(schedule_id: str) -> Any:
        stored = scheduler.get(schedule_id)
        if stored is None:
            raise ScheduleNotFound(schedule_id)
        return stored

    @bp.get("/")
    def schedules_page() -> str:
        args = _list_args()
        page = list_page(scheduler, scan_budget=cfg.scan_budget, **args)
        return render_template("schedcore/schedules.html", page=page, args=args, statuses=STATUSES, cfg=cfg)

    @bp.get("/schedules/<schedule_id>")
    def schedule_page(schedule_id: str) -> str:
        detail = schedule_detail(scheduler, _stored(schedule_id))
        message = _MESSAGES.get(request.args.get("done", ""))
        return render_template("schedcore/schedule.html", s=detail, message=message, cfg=cfg)

    @bp.get("/overview")
    def overview_page() -> str:
        data = overview(scheduler, cfg.activity, cfg.clock())
        return render_template("schedcore/overview.html", o=data, chart=_chart(data["activity"]), cfg=cfg)

    @bp.get("/api/")
    def api_index() -> Response:
        return jsonify(
            {
                "read_only": cfg.read_only,
                "endpoints": {
                    "GET /api/schedules": "one page of schedules: ?after=ID&limit=N&q=TEXT&status="
                    + "|".join(STATUSES),
                    "GET /api/schedules/<id>": "a schedule: definition (and as TOML), next 10 fire times, history",
                    "GET /api/schedules/<id>/history": "its run records, newest first: ?limit=N (1-1000)",
                    "GET /api/overview": "live schedulers, index stats, warnings, runs and failures per minute",
                    "GET /api/csrf": "a CSRF token for POST requests (header X-CSRF-Token, with its cookie)",
                    **{f"POST /api/schedules/<id>/{a}": _MESSAGES[a] for a in ACTIONS},
                },
            }
        )

    @bp.get("/api/schedules")
    def api_schedules() -> Response:
        return jsonify(list_page(scheduler, scan_budget=cfg.scan_budget, **_list_args()).to_dict())

    @bp.get("/api/schedules/<schedule_id>")
    def api_schedule(schedule_id: str) -> Response:
        return jsonify(schedule_detail(scheduler, _stored(schedule_id)))

    @bp.get("/api/schedules/<schedule_id>/history")
    def api_history(schedule_id: str) -> Response:
        limit_text = request.args.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            raise ValidationError("limit", limit_text, "expected a whole number from 1 to 1000")
        detail = schedule_detail(scheduler, _stored(schedule_id), runs=int(limit_text))
        return jsonify({"id": schedule_id, "history": detail["history"]})

    @bp.get("/api/overview")
    def api_overview() -> Response:
        return jsonify(overview(scheduler, cfg.activity, cfg.clock()))

    @bp.get("/api/csrf")
    def api_csrf() -> Response:
        return jsonify({"csrf_token": g.csrf_token, "header": CSRF_HEADER, "cookie": CSRF_COOKIE})

    # -- acting --------------------------------------------------------------------------

    def _act(schedule_id: str, action: str, fields: dict[str, Any]) -> dict[str, Any]:
        if action == "pause":
            stored = scheduler.pause(schedule_id)
            return {"id": schedule_id, "paused": stored.schedule.paused}
        if action == "resume":
            stored = scheduler.resume(schedule_id)
            nxt = stored.next_fire.nominal.isoformat() if stored.next_fire else None
            return {"id": schedule_id, "paused": stored.schedule.paused, "next_fire": nxt}
        if action == "trigger":
            return {"id": schedule_id, "run_id": scheduler.trigger_now(schedule_id)}
        if action == "remove":
            if not scheduler.remove(schedule_id):
                raise ScheduleNotFound(schedule_id)
            return {"id": schedule_id, "removed": True}
        stored = _stored(schedule_id)
        zone = _schedule_zone(stored.schedule)
        start = _instant(fields.get("start"), "start", zone)
        end = cfg.clock() if not fields.get("end") else _instant(fields.get("end"), "end", zone)
        if end < start:
            raise ValidationError("end", fields.get("end"), "is before start")
        return {"id": schedule_id, "queued": scheduler.backfill(schedule_id, start, end)}

    @bp.post("/schedules/<schedule_id>/<action>")
    def page_action(schedule_id: str, action: str) -> Any:
        if action not in ACTIONS:
            abort(404)
        _act(schedule_id, action, dict(request.form))
        if action == "remove":
            return redirect(url_for(".schedules_page"), code=303)
        return redirect(url_for(".schedule_page", schedule_id=schedule_id, done=action), code=303)

    @bp.post("/api/schedules/<schedule_id>/<action>")
    def api_action(schedule_id: str, action: str) -> Response:
        if action not in ACTIONS:
            return _error(404, f"no action {action!r}; actions: {', '.join(ACTIONS)}")
        body = request.get_json(silent=True) if request.is_json else None
        fields = body if isinstance(body, dict) else dict(request.form)
        return jsonify(_act(schedule_id, action, fields))

    return bp


def _wants_json() -> bool:
    return "/api/" in request.path or request.path.endswith("/api")


def _instant(value: Any, field: str, zone: Any) -> datetime:
    """An ISO-8601 instant; one without an offset (a browser's date-time input) is read in
    the schedule's zone, which the form names."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, value, "expected an ISO-8601 date-time")
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(field, value, "not an ISO-8601 date-time") from None
    if naive.tzinfo is None:
        return naive.replace(tzinfo=zone).astimezone(timezone.utc)
    return parse_instant(value, field)


def _chart(activity: dict[str, Any]) -> dict[str, Any]:
    """Bar geometry of the runs/failures chart (drawn as inline SVG: no script, no library)."""
    width, height, bar = 600, 120, 10
    top = max([1, *activity["runs"], *activity["failures"]])
    bars = []
    for index, (runs, failures) in enumerate(zip(activity["runs"], activity["failures"], strict=True)):
        x = index * bar
        run_h = round(runs / top * (height - 12))
        fail_h = round(failures / top * (height - 12))
        bars.append(
            {
                "x": x,
                "run_y": height - run_h,
                "run_h": run_h,
                "fail_y": height - fail_h,
                "fail_h": fail_h,
                "label": f"{activity['minutes'][index][11:16]} UTC: {runs} run(s), {failures} failure(s)",
            }
        )
    return {"width": width, "height": height, "bar": bar, "top": top, "bars": bars}


def create_app(scheduler: Scheduler, config: WebConfig | None = None) -> Flask:
    """A standalone Flask app serving the dashboard at ``/`` (``schedcore web`` serves it with waitress)."""
    app = Flask("schedcore_web")
    app.register_blueprint(create_blueprint(scheduler, config))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = (
            jsonify({"error": exc.description})
            if _wants_json()
            else Response(exc.description or "", mimetype="text/plain")
        )
        response.status_code = exc.code or 500
        return response

    return app
