"""The hand-off half of :class:`~schedcore_rq.RQExecutor`: building RQ jobs (from cached job
templates where it can), sending a batch in one round trip with the hand-off script, and
dropping the markers of settled runs."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError

from schedcore.exceptions import ExecutorUnavailable, ValidationError
from schedcore.records import OutcomeStatus, Run
from schedcore_redis.connection import send_now
from schedcore_rq._core import _DRIVER_ERRORS, _chunks, _ExecutorCore, _is_wrong_type, _translated, log
from schedcore_rq._jobs import (
    HANDOFF_LUA,
    ON_FAILURE,
    ON_STOPPED,
    ON_SUCCESS,
    RUN_TASK,
    TEMPLATE_CACHE_SIZE,
    JobOptions,
    JobTemplate,
    as_bytes,
    job_id_for,
    parse_options,
    run_info,
    run_job_id,
)
from schedcore_rq._outcomes import META_KEY, RunInfo, error_text, now_ms, payload

_CHUNK = 100  # runs per script call; all chunks of a batch go in one pipeline (one round trip)


_TEMPLATE_TTL_MS = 7 * 86_400_000  # a job template unused this long leaves Redis (sent again if needed)


_TEMPLATE_GONE = -1  # the hand-off script's reply when a template it should read is not there


_SETTLE_CHUNK = 1000  # hand-off markers per UNLINK of settled()


_HANDED_NOW = ord("1")  # a run's character in the hand-off script's reply: handed over now


_HANDING = "cannot hand runs to RQ"


class _Entry(NamedTuple):
    """One run of a hand-off, as :meth:`RQExecutor._start_handoff` sends it (see :data:`HANDOFF_LUA`)."""

    job_id: str
    info: str  # run info JSON
    failure: str  # failure payload ('' = none)
    template: JobTemplate | None
    data: bytes  # the job's data (a template's slot); without a template b"1" marks a job with dependencies
    meta: bytes  # the job's serialized meta (b"" without a template)
    description: bytes  # encoded as redis-py would (b"" without a template)
    commands: list[Any]  # without a template: number of commands, then per command its length and arguments


class _Plan(NamedTuple):
    """What every run of one (task, arguments, queue, options) in a hand-off shares."""

    meta: dict[str, Any]  # the options' meta
    description: str | None  # the options' description
    template: JobTemplate
    data: bytes


def _rq_timestamp() -> str:
    """Now, as RQ writes a job's ``created_at`` and ``enqueued_at``."""
    from rq.utils import now, utcformat

    return utcformat(now())


def _flat(commands: list[tuple[Any, ...]]) -> list[Any]:
    """Commands as the hand-off script reads them: their number, then per command its length and arguments."""
    flat: list[Any] = [len(commands)]
    for command in commands:
        flat.append(len(command))
        flat.extend(command)
    return flat


def _no_dependency_check(job: Any, pipeline: Any = None) -> Any:
    """Stands in for ``Queue.setup_dependencies`` in captures (the hand-off script decides)."""
    return job


def _description(option: str | None, run: Run) -> str:
    """A job's description: the ``description`` option, else the task and the run id."""
    return option or f"{run.task} [schedcore {run.id}]"


class _Handoff(_ExecutorCore):
    """Hands runs to RQ exactly once (see :data:`~schedcore_rq._jobs.HANDOFF_LUA`)."""

    def submit(self, runs: Sequence[Run]) -> None:
        """Hand ``runs`` to RQ: one job per run id, never two, in one round trip per batch.

        A run whose job cannot be built (arguments the serializer refuses, a bad option) is
        reported as a failed run. Redis errors raise ExecutorUnavailable; the core releases
        its claims and hands the runs over again later, which is harmless.
        """
        self.handoff(runs)

    def submit_nowait(self, runs: Sequence[Run]) -> Callable[[], None]:
        """See ``submit_nowait`` in :class:`schedcore.protocols.Executor`: the jobs are built and
        their hand-off script sent now; the returned function reads its reply (raising what
        :meth:`submit` would have raised), so the engine claims its next batch meanwhile."""
        entries, stamp = self._entries(runs)
        finish = self._send(entries, stamp, nowait=True)

        def handed_over() -> None:
            finish()

        return handed_over

    def handoff(self, runs: Sequence[Run]) -> list[bool]:
        """Like :meth:`submit`, returning per run whether it was handed over now (False: before)."""
        entries, stamp = self._entries(runs)
        return self._send(entries, stamp, nowait=False)()

    def _entries(self, runs: Sequence[Run]) -> tuple[list[_Entry], str]:
        """The hand-off entries of ``runs`` and their timestamp (ExecutorUnavailable when shut down)."""
        if self._closed:
            raise ExecutorUnavailable("the RQ executor is shut down")
        stamp = _rq_timestamp()  # the jobs of one hand-off are created (and enqueued) together
        with _translated(_HANDING, self.keys.prefix):
            # Runs of schedules that share a definition carry the very same args, kwargs and
            # options objects: what only depends on them is worked out once per call. Keyed
            # by id(), so only valid while the runs (and so those objects) are alive: local.
            plans: dict[tuple[Any, ...], _Plan] = {}
            encoder = self._connection.get_encoder()  # the description is sent inside a bytes argument
            encode = functools.partial(str.encode, encoding=encoder.encoding, errors=encoder.encoding_errors)
            return [self._entry(run, stamp, plans, encode) for run in runs], stamp

    def _send(self, entries: list[_Entry], stamp: str, *, nowait: bool) -> Callable[[], list[bool]]:
        """Start the hand-off script for ``entries`` (with ``nowait``: sent now, read later);
        the returned function finishes it: per entry whether it was handed over now."""
        if not entries:
            return list
        with _translated(_HANDING, self.keys.prefix):
            finish = self._start_handoff(entries, stamp, nowait=nowait)

        def finished() -> list[bool]:
            with _translated(_HANDING, self.keys.prefix):
                handed = finish()
            with self._mine_lock:
                self._mine.update(entry.job_id for entry in entries if not entry.failure)
            return handed

        return finished

    def settled(self, run_ids: Sequence[str]) -> None:
        """Drop the hand-off markers of ``run_ids``: their hand-over is committed in the store.

        A marker exists so that a scheduler that re-claims an entry whose claimer died
        between ``submit`` and ``commit`` -- and rebuilds the same run ids -- does not hand
        them over twice. Once the claim is committed, no scheduler can rebuild these runs from
        it, so the marker has done its job; markers of claims never committed (a crash) keep
        ``handoff_ttl``. The markers in Redis are thus bounded by the hand-overs in flight,
        not by the run rate. One ``UNLINK`` per call, sent without waiting: its reply is read
        at the next call (or at shutdown), long after it arrived. Never raises: a failure
        leaves the markers to expire.
        """
        if not run_ids:
            return
        named = self._named
        keys = [self.keys.handed(named.pop(r, "") or job_id_for(r, self._namespace)) for r in run_ids]
        with self._settle_lock:
            self._read_settled()
            try:
                commands = [("UNLINK", *chunk) for chunk in _chunks(keys, _SETTLE_CHUNK)]
                sent = send_now(self._connection, commands)
                if sent is None:  # no pool to send on (a cluster client): the usual call
                    pipe = self._connection.pipeline(transaction=False)
                    for command in commands:
                        pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                    pipe.execute(raise_on_error=False)
                self._settling = sent
            except _DRIVER_ERRORS as exc:
                name = type(exc).__name__
                log.warning("could not drop %d hand-off markers (%s: %s); they expire", len(keys), name, exc)

    def _read_settled(self) -> None:
        """Read the reply of the last :meth:`settled` call, if still unread (under ``_settle_lock``)."""
        sent, self._settling = self._settling, None
        if sent is None:
            return
        try:
            for reply in sent():
                if isinstance(reply, Exception):
                    raise reply
        except _DRIVER_ERRORS as exc:
            log.warning("could not drop hand-off markers (%s: %s); they expire", type(exc).__name__, exc)

    def _queue_name(self, options: JobOptions, run_queue: str) -> str:
        if options.queue:
            return options.queue
        return run_queue if run_queue != "default" else self._default_queue

    def _queue(self, name: str) -> Any:
        queue = self._queues.get(name)
        if queue is None:
            from rq import Queue

            queue = Queue(name, connection=self._connection, serializer=self._serializer_arg)
            self._queues[name] = queue
        return queue

    def _dependent_queue(self, name: str) -> Any:
        """The queue jobs with dependencies are captured on: RQ's dependency check is off."""
        queue = self._dependent_queues.get(name)
        if queue is None:
            from rq import Queue

            queue = Queue(name, connection=self._connection, serializer=self._serializer_arg)
            queue.setup_dependencies = _no_dependency_check  # type: ignore[method-assign]
            self._dependent_queues[name] = queue
        return queue

    def _entry(
        self, run: Run, stamp: str, plans: dict[tuple[Any, ...], _Plan], encode: Callable[[str], bytes]
    ) -> _Entry:
        """One run of a hand-off (see :data:`HANDOFF_LUA`): a run whose job cannot be built (a
        bad option, arguments the serializer refuses) carries a failure payload instead.

        ``plans`` holds what runs with the same task, arguments, queue and options share (their
        parsed options, template and data), by the identity of those objects: the first such
        run of a call works it out, the others only serialize their meta. ``encode`` is the
        connection's encoding of a str (the description is sent inside a bytes argument).
        """
        job_id = self._job_id(run)
        run_fields = run_info(run)
        info = run_fields.to_json()
        try:
            if run.id in self._named:  # a job id of the caller's: never templated (see _job_id)
                return self._untemplated(run, job_id, info, run_fields)
            plan_key = (run.task, run.queue, id(run.args), id(run.kwargs), id(run.executor_options))
            plan = plans.get(plan_key)
            if plan is None:
                options = parse_options(run.executor_options)
                if not options.templated:
                    return self._untemplated(run, job_id, info, run_fields)
                known, _shape, _key = self._lookup(run, options)
                if known is not None:
                    plan = plans[plan_key] = _Plan(options.meta, options.description, *known)
            if plan is not None:
                meta = self._serializer.dumps(self._meta(plan.meta, run_fields))
                description = _description(plan.description, run)
                return _Entry(job_id, info, "", plan.template, plan.data, meta, encode(description), [])
            template, rest = self._job_plan(run, job_id, run_fields, stamp)
            if template is not None:
                description, meta, _stamp, data = rest
                return _Entry(job_id, info, "", template, data, meta, encode(description), [])
        except _DRIVER_ERRORS:
            raise
        except Exception as exc:  # a run RQ refuses is a failed run, not a broken scheduler
            log.warning("run %s cannot become an RQ job: %s", run.id, error_text(type(exc), exc))
            failure = payload(job_id, run_fields, OutcomeStatus.FAILED, error=error_text(type(exc), exc))
            return _Entry(job_id, info, failure, None, b"", b"", b"", [0])
        return _Entry(job_id, info, "", None, b"", b"", b"", rest)

    def _job_id(self, run: Run) -> str:
        """The RQ job id of ``run`` (see :func:`run_job_id`). A run with an id of the caller's
        is remembered in ``_named`` (for :meth:`settled`, and to bypass the job templates,
        whose id slot is found by searching the captured writes for the id: a short id such
        as ``"a"`` would also match inside other values)."""
        if run.executor_options.get("job_id") is None:  # the common case, without parsing the options
            return job_id_for(run.id, self._namespace)
        try:
            job_id = run_job_id(run, parse_options(run.executor_options), self._namespace)
        except ValidationError:
            return job_id_for(run.id, self._namespace)  # the run fails in _entry, naming the option
        if job_id != job_id_for(run.id, self._namespace):
            self._named[run.id] = job_id
        return job_id

    def _untemplated(self, run: Run, job_id: str, info: str, run_fields: RunInfo) -> _Entry:
        """The hand-off entry of a run built from RQ itself (a job id of the caller's,
        dependencies or callbacks): its commands, and for a job with dependencies both the
        enqueue and the deferral, which the hand-off script chooses between."""
        options = parse_options(run.executor_options)
        description = _description(options.description, run)
        meta = self._meta(options.meta, run_fields, options.callbacks)
        commands = _flat(self._capture(run, job_id, options, meta, description))
        if not options.depends_on:
            return _Entry(job_id, info, "", None, b"", b"", b"", commands)
        from rq.job import Job

        deferred = _flat(self._capture(run, job_id, options, meta, description, deferred=True))
        allow = "1" if options.allow_dependency_failures else "0"
        keys = [Job.key_for(dependency) for dependency in options.depends_on]
        return _Entry(job_id, info, "", None, b"1", b"", b"", [len(keys), *keys, allow, *commands, *deferred])

    def _job_commands(self, run: Run, job_id: str, info: RunInfo) -> list[tuple[Any, ...]]:
        """The writes RQ makes to enqueue this run's job (what the hand-off script replays)."""
        template, rest = self._job_plan(run, job_id, info)
        if template is not None:
            description, meta, stamp, data = rest
            return template.render(job_id, description, meta, stamp, data)
        commands, at = [], 1
        for _ in range(rest[0]):
            commands.append(tuple(rest[at + 1 : at + 1 + rest[at]]))
            at += 1 + rest[at]
        return commands

    def _job_plan(
        self, run: Run, job_id: str, info: RunInfo, stamp: str | None = None
    ) -> tuple[JobTemplate | None, list[Any]]:
        """How the hand-off script writes this run's job: a template and its slot values
        (description, meta, timestamp, data), or None and the commands themselves.

        Building an RQ job is the dominant cost of a hand-off, and every run of a schedule
        makes the same writes but for its id, description, meta, timestamps and data: the
        first run of each (queue, options, task, arguments) is captured from RQ itself, its
        :class:`JobTemplate` (shared by every schedule with the same queue and options) and
        its data are kept; later runs only send their slot values. Once a capture has shown
        that RQ's data for a queue and options is :meth:`_job_data`, runs of other tasks and
        arguments with those options use the template at once, without a capture.
        """
        options = parse_options(run.executor_options)
        meta = self._meta(options.meta, info)
        description = _description(options.description, run)
        known, shape, key = self._lookup(run, options)
        if known is not None:
            template, data = known
            return template, [description, self._serializer.dumps(meta), stamp or _rq_timestamp(), data]
        commands = self._capture(run, job_id, options, meta, description)
        if key is not None and key not in self._templates:
            captured = JobTemplate.capture(commands, job_id, description, self._serializer.dumps(meta), run.id)
            if captured is None:
                self._remember(key, None, b"")
            else:
                shared = self._shared.setdefault(captured.digest, captured)
                data = captured.data_of(commands)
                self._remember(key, shared, data)
                if shape is not None and data and data == self._job_data(run):
                    self._by_shape[shape] = shared
        return None, _flat(commands)

    def _meta(
        self, options_meta: dict[str, Any], info: RunInfo, callbacks: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A job's meta: the options' meta, then schedcore's entry (run info, namespace,
        heartbeat, and the caller's callbacks, which schedcore's own run on the worker)."""
        entry = {**info.to_dict(), "ns": self._namespace, "hb": self._heartbeat}
        if callbacks:
            entry.update(callbacks)
        return {**options_meta, META_KEY: entry}

    def _lookup(
        self, run: Run, options: JobOptions
    ) -> tuple[tuple[JobTemplate, bytes] | None, tuple[Any, ...] | None, tuple[Any, ...] | None]:
        """The template and data known for ``run`` (None: capture it from RQ), with the
        (queue, options) shape and the full key they are kept under (None: not serializable)."""
        try:
            shape = (
                self._queue_name(options, run.queue),
                self._serializer.dumps(options.meta),
                options.job_timeout,
                options.result_ttl,
                options.ttl,
                options.failure_ttl,
                options.at_front,
                options.description,
            )
            key = (*shape, self._serializer.dumps((run.task, run.args, run.kwargs)))
        except Exception:
            return None, None, None  # the slow path reports what the serializer refuses
        known = self._templates.get(key)
        if known is None and shape in self._by_shape:
            known = self._remember(key, self._by_shape[shape], self._job_data(run))
        return known, shape, key

    def _remember(
        self, key: tuple[Any, ...], template: JobTemplate | None, data: bytes
    ) -> tuple[JobTemplate, bytes] | None:
        if len(self._templates) >= TEMPLATE_CACHE_SIZE:
            self._templates.clear()
            self._shared.clear()
            self._by_shape.clear()
        known = None if template is None else (template, data)
        self._templates[key] = known
        return known

    def _job_data(self, run: Run) -> bytes:
        """The job's ``data`` as RQ computes it (``Job.to_dict``: the compressed serialized
        function name, instance, arguments and keyword arguments); used only where a capture
        from RQ showed the same bytes."""
        return zlib.compress(self._serializer.dumps((RUN_TASK, None, (run.task, *run.args), dict(run.kwargs))))

    def _capture(
        self,
        run: Run,
        job_id: str,
        options: JobOptions,
        meta: dict[str, Any],
        description: str,
        *,
        deferred: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The writes of ``Queue.enqueue_job`` for this run, from RQ itself; with ``deferred``,
        the writes RQ makes instead when a dependency has not finished (``setup_dependencies``).

        A job with dependencies is captured on a queue whose own dependency check is off: that
        check reads (and, with pickle, unpickles) the dependencies' jobs, and its answer would
        be stale by the hand-off anyway -- the hand-off script decides (see :data:`HANDOFF_LUA`).
        """
        from rq import Callback
        from rq.job import JobStatus

        name = self._queue_name(options, run.queue)
        queue = self._dependent_queue(name) if options.depends_on else self._queue(name)
        job = queue.create_job(
            RUN_TASK,
            args=(run.task, *run.args),
            kwargs=dict(run.kwargs),
            timeout=options.job_timeout,
            result_ttl=options.result_ttl,
            ttl=options.ttl,
            failure_ttl=options.failure_ttl,
            description=description,
            job_id=job_id,
            meta=meta,
            on_success=Callback(ON_SUCCESS, timeout=options.on_success_timeout),
            on_failure=Callback(ON_FAILURE, timeout=options.on_failure_timeout),
            on_stopped=Callback(ON_STOPPED),
            depends_on=list(options.depends_on) or None,
        )
        pipe = self._connection.pipeline(transaction=False)
        try:
            if deferred:  # the branch of RQ's setup_dependencies that defers the job
                job.enqueue_at_front = options.at_front  # RQ enqueues it at the front when its turn comes
                pipe.sadd(queue.redis_queues_keys, queue.key)
                job.set_status(JobStatus.DEFERRED, pipeline=pipe)
                job.register_dependency(pipeline=pipe)
                job.save(pipeline=pipe)
                job.cleanup(ttl=job.ttl, pipeline=pipe)
                return [tuple(args) for args, _options in pipe.command_stack]
            queue.enqueue_job(job, pipeline=pipe, at_front=options.at_front)
            commands = [tuple(args) for args, _options in pipe.command_stack]
        finally:
            pipe.reset()
        if not any(str(c[0]).upper() in ("RPUSH", "LPUSH") for c in commands):
            raise RuntimeError(f"RQ did not push job {job_id} onto a queue (unsupported RQ version?)")
        return commands

    def _start_handoff(self, entries: list[_Entry], stamp: str, *, nowait: bool) -> Callable[[], list[bool]]:
        """The hand-off calls for ``entries``; with ``nowait`` sent at once (see :func:`send_now`).
        The returned function reads (or makes) them, retries what the server lost, and
        returns per run whether it was handed over now."""
        from rq.job import Job

        keys = [self.keys.outstanding, self.keys.runs, self.keys.outcomes]
        head: list[Any] = [
            now_ms(),
            self._handoff_ttl_ms,
            self.keys.handed_prefix,
            _TEMPLATE_TTL_MS,
            Job.redis_job_namespace_prefix,  # Job.key_for(job_id) is this + job_id
            stamp,
        ]
        chunks: list[tuple[list[Any], list[JobTemplate], list[Any]]] = []  # (data blobs, templates, runs)
        for chunk in _chunks(entries, _CHUNK):
            numbers: dict[str, int] = {}  # template digest -> its number in this call
            used: list[JobTemplate] = []
            blobs: dict[bytes, int] = {}  # data -> its number in this call
            runs: list[Any] = []
            for job_id, info, failure, template, data, meta, description, commands in chunk:
                if template is None:  # data: b"1" for a job with dependencies, else b""
                    runs.append(f"{job_id}\n0\n{1 if data else 0}\n{info}\n{failure}\n0\n")
                    runs += commands
                    continue
                number = numbers.get(template.digest)
                if number is None:
                    number = numbers[template.digest] = len(numbers) + 1
                    used.append(template)
                blob = blobs.get(data)
                if blob is None:
                    blob = blobs[data] = len(blobs) + 1
                runs.append(
                    b"".join((f"{job_id}\n{number}\n{blob}\n{info}\n\n{len(meta)}\n".encode(), meta, description))
                )
            chunks.append(([len(blobs), *blobs], used, runs))
        results: list[Any] = [None] * len(chunks)
        todo = list(range(len(chunks)))  # the chunks not handed over yet

        def calls() -> list[tuple[Any, ...]]:
            if self._handoff_sha is None:
                self._handoff_sha = str(self._connection.script_load(HANDOFF_LUA))
            out = []
            for index in todo:
                blob_args, used, runs = chunks[index]
                templates: list[Any] = []
                for template in used:
                    templates.append(self.keys.template(template.digest))
                    if template.digest in self._stored:
                        templates.append(0)
                    else:
                        templates += [len(template.lua_args), *template.lua_args]
                out.append(
                    ("EVALSHA", self._handoff_sha, len(keys), *keys, *head, *blob_args, len(used), *templates, *runs)
                )
            return out

        def execute() -> list[Any]:
            pipe = self._connection.pipeline(transaction=False)
            for command in calls():
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return pipe.execute(raise_on_error=False)

        sent = send_now(self._connection, calls()) if nowait else None

        def finish() -> list[bool]:
            # Retried at most twice: for a script the server lost (restart, SCRIPT FLUSH) and
            # for templates it lost (expired, flushed), which the retry sends inline.
            for attempt in range(3):
                replies = sent() if sent is not None and attempt == 0 else execute()
                again = []
                for index, reply in zip(todo, replies, strict=True):
                    if isinstance(reply, NoScriptError):
                        again.append(index)
                        self._handoff_sha = None
                    elif _is_wrong_type(reply) and attempt < 2 and self._try_repair_keys():
                        again.append(index)  # nothing was written; the damaged key is set aside
                    elif isinstance(reply, Exception):
                        raise reply
                    elif isinstance(reply, int):  # the only integer reply: a template is gone
                        if reply != _TEMPLATE_GONE:
                            raise RuntimeError(f"unexpected reply {reply!r} from the hand-off script")
                        again.append(index)
                        self._stored.difference_update(t.digest for t in chunks[index][1])
                    else:
                        results[index] = reply
                        if len(self._stored) >= TEMPLATE_CACHE_SIZE:
                            self._stored.clear()  # forgetting costs one inline copy per template
                        self._stored.update(t.digest for t in chunks[index][1])
                if not again:
                    break
                todo[:] = again
            else:
                raise ExecutorUnavailable("the hand-off script or its job templates keep disappearing from Redis")
            # one character per run: b"1" handed over now, b"0" before
            return [flag == _HANDED_NOW for reply in results for flag in as_bytes(reply)]  # str with decode_responses

        return finish
