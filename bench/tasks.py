"""The task every benchmark job names. No worker runs it: the benchmarks measure scheduling only."""


def noop(*args: object, **kwargs: object) -> None:
    """Do nothing."""
