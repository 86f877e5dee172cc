"""The task every benchmark job names. No worker runs it but in the start-lateness streams
(``python -m bench --only start``): the other figures measure scheduling only."""


def noop(*args: object, **kwargs: object) -> None:
    """Do nothing."""
