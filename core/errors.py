"""Errors that carry a message for a person: the CLI prints them without a traceback."""


class RetainError(Exception):
    """Bad input or a broken precondition, said in words the user can act on."""
