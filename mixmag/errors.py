"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""


class MixmagError(Exception):
    """A problem with the user's input or settings; the message names the thing and the fix."""

    exit_code = 2


class OutputExistsError(MixmagError):
    """An output already exists and --overwrite was not given."""


_OS_FIXES = {
    "EROFS": "the file system is read-only; choose an --out on a writable disk",
    "ENOSPC": "no space left on the device; free some space or choose an --out on another disk",
    "EDQUOT": "disk quota exceeded; free some space or choose an --out on another disk",
    "EACCES": "permission denied; choose a path you can write to (or read, for inputs)",
    "EPERM": "operation not permitted; choose a path you can write to",
    "ENOTDIR": "a part of the path is a file, not a folder; choose another path",
    "EISDIR": "it is a folder where a file is needed; name a file",
    "EEXIST": "it already exists where a new folder or file is needed; choose another path",
    "ENOENT": "no such file or folder",
    "ENAMETOOLONG": "the name is too long for the file system; choose a shorter path",
}


def describe_os_error(e: OSError) -> str:
    """One line for a file-system error: the path, what the system said, and the fix."""
    import errno

    code = errno.errorcode.get(e.errno or 0, "")
    paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p)
    why = _OS_FIXES.get(code) or (e.strerror or str(e) or type(e).__name__)
    return f"{paths + ': ' if paths else ''}{why}" + (f" [{code}]" if code else "")
