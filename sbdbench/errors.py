"""The one exception type users see: a clear, one-line message, shown by the CLI without a traceback."""


class SbdbenchError(Exception):
    """A problem the user can act on (bad input, missing data, failed download...).

    The CLI prints ``str(error)`` on one line and exits with a non-zero code; ``--debug`` shows the traceback.
    """


class InputError(SbdbenchError, ValueError):
    """Invalid user data: wrong shape, empty, non-finite values, malformed files."""


class DataError(SbdbenchError):
    """A dataset, split, checkpoint or download that is missing, corrupt or inconsistent."""
