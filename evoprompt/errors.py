"""Errors that reach the user as one line, without a traceback."""


class UserError(Exception):
    """Bad input or configuration: the message says what is wrong and, where it can, what is valid."""


def unknown(kind: str, name: str, valid) -> UserError:
    return UserError(f"unknown {kind} '{name}'; valid: {', '.join(sorted(valid))}")
