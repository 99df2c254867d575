"""Errors of the joint (secure multiparty) engine.

Every failure that a person running the engine can meet is a ``JointError``
with a message meant for people: what went wrong, for which party, and what to
look at. Code never has to parse the message: the attributes say the same.
"""

from __future__ import annotations

from ..errors import AggregatorError


class JointError(Exception):
    """A joint computation failed; ``party`` is the failing party's index, if known."""

    def __init__(self, message: str, *, party: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.party = party

    def __str__(self) -> str:
        return self.message


class ShareDecryptError(JointError):
    """An encrypted share does not open with this key and context.

    Either it was encrypted for another party, or for another plan or
    organisation (the context is bound as associated data), or it was altered.
    """


class PartyFailed(JointError):
    """A computing party exited with an error, was killed, or timed out."""


class PartyRunRefused(AggregatorError):
    """One party's own run (`aggregator compute --no-local`) could not start, was refused, or stopped; this party
    released nothing. A message for people, exit code 1."""
