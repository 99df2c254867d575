"""One exception hierarchy; the CLI catches the base class once and prints `message`.

Messages are for people and must never carry a value from an export row: they can end up in logs
that leave the organisation.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base class: something the user can fix; carries a message for people and an exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(AggregatorError):
    """The command was called wrongly (bad option value, missing file argument).

    `option` names the library parameter at fault ("kind", "by"); the CLI shows it as its own flag, so library
    messages never name command-line flags."""

    exit_code = 2

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class BreakdownNotReleased(UsageError):
    """No organisation released noisy counts that cover the breakdown asked for: the people without a lawful basis
    cannot be counted in it, so the table is refused. `released` lists the marginals that were released (each a
    tuple of dimensions), so the user can choose a breakdown within one of them."""

    def __init__(self, message: str, released: list[tuple[str, ...]], option: str | None = "by") -> None:
        super().__init__(message, option)
        self.released = released


class InputError(AggregatorError):
    """An export or mapping file could not be read or understood."""


class MappingError(InputError):
    """The mapping file is malformed or does not fit the export."""


class ValidationFailed(AggregatorError):
    """One or more rows of the export broke the schema."""


class BudgetExceeded(AggregatorError):
    """A release would take an organisation past its privacy budget for a period."""


class BundleRejected(AggregatorError):
    """A bundle failed verification or a merge rule and was not ingested."""

    def __init__(self, message: str, reason: str) -> None:
        from .contract.refusals import REFUSALS

        if reason not in REFUSALS:  # a programming error: every reason is in the one catalogue
            raise ValueError(f"unknown refusal reason {reason!r}; add it to contract/refusals.py")
        super().__init__(message)
        self.reason = reason


class StoreBusy(AggregatorError):
    """Another process holds the coordinator's database."""


class ConfigError(AggregatorError):
    """Organisation configuration, keys or registry are missing or invalid."""


class ReceiptRefused(AggregatorError):
    """A receipt that does not open, is not signed by the coordinator's key, or does not say what a receipt says."""
