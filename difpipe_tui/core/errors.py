"""Error classes and the exit codes they map to: one table for the whole program.

Every error DifPipe raises on purpose is a :class:`DifpipeError`. Its message is one line that
names the thing at fault (a host, a key path, a file) and what to do about it. ``retryable`` says
whether trying again later can succeed (a cut link) or not (a wrong key).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``difpipe`` command. Stable: scripts depend on them."""

    OK = 0
    INTERNAL = 1  # a bug: please report it
    USAGE = 2  # bad command line
    CONFIG = 3  # the config file is invalid or cannot be written
    AUTH = 4  # authentication failed
    HOST_KEY = 5  # host key unknown or mismatched (security)
    NETWORK = 6  # network unreachable, refused, timed out, link lost (retryable)
    REMOTE = 7  # a remote command failed
    VERIFY = 8  # a checksum did not match
    PARTIAL = 9  # some targets succeeded, some failed
    LOCAL_IO = 10  # a local file could not be read or written
    INTERRUPTED = 130  # stopped by Ctrl-C / SIGTERM


EXIT_CODE_DOC: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "internal error (a bug; please report it)",
    ExitCode.USAGE: "usage error: bad command line",
    ExitCode.CONFIG: "config error: the file is invalid or cannot be written",
    ExitCode.AUTH: "authentication failed",
    ExitCode.HOST_KEY: "host key unknown or mismatched (security; nothing was sent)",
    ExitCode.NETWORK: "network error or timeout (retryable)",
    ExitCode.REMOTE: "a remote command failed",
    ExitCode.VERIFY: "verification failed: checksums differ",
    ExitCode.PARTIAL: "partial success: some targets failed",
    ExitCode.LOCAL_IO: "a local file could not be read or written",
    ExitCode.INTERRUPTED: "interrupted",
}


class DifpipeError(Exception):
    """Base of every expected error. ``str(err)`` is the one-line message for the user."""

    exit_code: ExitCode = ExitCode.INTERNAL
    retryable: bool = False
    kind: str = "error"

    def __init__(self, message: str, *, host: str | None = None, hint: str | None = None):
        self.message = message
        self.host = host
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = self.message
        if self.host and not text.startswith((f"{self.host}:", f"hosts.{self.host}.")):
            text = f"{self.host}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split())  # always one line

    def to_dict(self) -> dict[str, object]:
        return {
            "error": self.kind,
            "message": self.render(),
            "host": self.host,
            "exit_code": int(self.exit_code),
            "retryable": self.retryable,
        }


class UsageError(DifpipeError):
    exit_code = ExitCode.USAGE
    kind = "usage"


class ConfigError(DifpipeError):
    exit_code = ExitCode.CONFIG
    kind = "config"


class AuthError(DifpipeError):
    exit_code = ExitCode.AUTH
    kind = "auth"


class HostKeyError(DifpipeError):
    exit_code = ExitCode.HOST_KEY
    kind = "host-key"


class NetworkError(DifpipeError):
    exit_code = ExitCode.NETWORK
    retryable = True
    kind = "network"


class RemoteCommandError(DifpipeError):
    exit_code = ExitCode.REMOTE
    kind = "remote"

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        hint: str | None = None,
        exit_status: int | None = None,
        stderr: str = "",
    ):
        self.exit_status = exit_status
        self.stderr = stderr
        super().__init__(message, host=host, hint=hint)


class VerifyError(DifpipeError):
    exit_code = ExitCode.VERIFY
    kind = "verify"


class PartialFailure(DifpipeError):
    exit_code = ExitCode.PARTIAL
    kind = "partial"


class LocalIOError(DifpipeError):
    exit_code = ExitCode.LOCAL_IO
    kind = "local-io"


class Interrupted(DifpipeError):
    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"


class FailFastStop(DifpipeError):
    """A destination stopped because another failed (``--fail-fast``).

    It carries the exit code and retryability of that failure, so the copy exits with the
    failure's code whichever destination is listed first, and a retryable failure retries
    every destination together.
    """

    kind = "stopped"

    def __init__(self, failed: str, cause: DifpipeError):
        self.cause = cause
        self.exit_code = cause.exit_code
        self.retryable = cause.retryable
        super().__init__(f"stopped: {failed} failed (--fail-fast)")
