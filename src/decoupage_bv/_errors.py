"""Errors the user can act on: each carries a one-line message naming the file, row or column."""


class DecoupageError(Exception):
    """Base class: the message is meant to be shown as is, without a traceback."""

    hint = None

    def __init__(self, message, hint=None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class InputError(DecoupageError):
    """An input file, column, row or option is unusable."""


class OutputError(DecoupageError):
    """An output cannot be written."""


class DownloadError(DecoupageError):
    """A download failed or gave a file that does not verify."""


class MissingSourceError(DecoupageError):
    """Offline, and a source file is not in the cache: the message says which URL to put where."""


class DecoupageWarning(UserWarning):
    """Something was repaired or assumed; the build report records it too (the CLI prints it from there)."""
