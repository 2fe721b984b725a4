"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""


class MixmagError(Exception):
    """A problem with the user's input or settings; the message names the thing and the fix."""

    exit_code = 2


class OutputExistsError(MixmagError):
    """An output already exists and --overwrite was not given."""
