"""The one exception hierarchy; cli.main turns each into a message and an exit code."""

from __future__ import annotations


class SecretsSyncError(Exception):
    """Base class. The message names the place and the fix, and never carries a value."""

    exit_code = 1

    def __init__(self, place: str, problem: str, fix: str = "") -> None:
        self.place = place
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.place}: {self.problem}" if self.place else self.problem
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class InputError(SecretsSyncError):
    """An input, the mapping or a source value is wrong. Raised before any AWS call."""


class CredentialsError(SecretsSyncError):
    """No usable AWS identity: OIDC, STS or the ambient chain failed."""


class AwsError(SecretsSyncError):
    """A call to Secrets Manager failed in a way that stops the whole run (e.g. reading state)."""
