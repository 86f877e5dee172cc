"""Benchmarks of schedcore (RedisStore + RQExecutor) side by side with rq-scheduler and RQ's own scheduler.

Run ``python -m bench [--quick]`` from the repository root; see ``bench/README.md``.
"""
