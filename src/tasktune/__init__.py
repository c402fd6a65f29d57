"""tasktune: one frozen language model, many tiny task modules."""

__version__ = "0.1.0"


class TasktuneError(Exception):
    """A user-facing error: printed as one line by the CLI, never with a traceback."""
