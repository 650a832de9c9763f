"""Errors every layer may raise: the ground floor of kvmtop's imports."""


class SourceError(Exception):
    """A source cannot start or go on; the message is one line for the user."""
