"""Subcommands of this stage (none yet)."""


def register(sub) -> None:
    pass
