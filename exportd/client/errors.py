"""What can go wrong talking to exportd, each with the exit code the command line gives it."""

from __future__ import annotations

from typing import Any, Final

# The command line's exit codes (documented in `exportd --help`).
EXIT_OK: Final = 0
EXIT_EXPORT: Final = 1  # the export failed, was canceled or expired, or the request was refused
EXIT_USAGE: Final = 2  # flags or configuration (no URL or token, a rejected token)
EXIT_NETWORK: Final = 3  # the server could not be reached, or answered with a server error
EXIT_INTERRUPTED: Final = 130  # Ctrl-C, the export left running


class ClientError(Exception):
    """Root of the client's errors; `exit_code` is what the command exits with."""

    exit_code: int = EXIT_NETWORK

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint: str | None = None  # what to do next, shown after the error


class ClientConfigError(ClientError):
    """No server URL or token, or one that cannot be used."""

    exit_code = EXIT_USAGE


class FileExists(ClientConfigError):
    """The file to write exists and is not the export's: not overwritten without --force."""


class Unreachable(ClientError):
    """Connection errors and 502/503/504 answers, after the retries ran out."""


class VerifyError(ClientError):
    """A downloaded file whose size or sha256 is not the one the export reported."""


class ExportUnsuccessful(ClientError):
    """The export ended failed, canceled or expired; `export` is its last JSON."""

    exit_code = EXIT_EXPORT

    def __init__(self, detail: str, export: dict[str, Any]) -> None:
        super().__init__(detail)
        self.export = export


class Problem(ClientError):
    """An RFC 9457 problem+json answer (or an error answer that was not one)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.code = str(body.get("code") or f"http_{status}")
        self.title = str(body.get("title") or f"HTTP {status}")
        detail = body.get("detail")
        super().__init__(str(detail) if detail else self.title)
        if status in (401, 403):
            self.exit_code = EXIT_USAGE
        elif 400 <= status < 500:
            self.exit_code = EXIT_EXPORT

    def __str__(self) -> str:
        return f"{self.detail} ({self.code}, HTTP {self.status})"
