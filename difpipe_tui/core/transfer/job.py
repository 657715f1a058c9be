"""A copy job: every option of ``difpipe copy``, from flags or from a job file (TOML/YAML/JSON).

The same field names are used on the command line (``--rate-limit`` ↔ ``rate_limit``), in job
files and in :func:`job_schema`, so an agent can write a job from the schema alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .codecs import COMPRESS_CHOICES, get_codec
from .ratelimit import parse_rate, parse_size
from .stall import DEFAULT_STALL_TIMEOUT
from .verify import DIGESTS

STRATEGIES = ("auto", "exec", "sftp", "tar")
TRANSPORTS = ("auto", "asyncssh", "openssh")
MiB = 1024 * 1024
MAX_STALL_TIMEOUT = 86400.0


@dataclass(frozen=True)
class CopyJob:
    source: str
    destinations: tuple[str, ...]
    recursive: bool = False
    strategy: str = "auto"
    compress: str = "auto"
    level: int | None = None
    verify: str = "sha256"
    checkpoint_interval: int = 64 * MiB
    retries: int = 3
    fail_fast: bool = False
    stall_timeout: float = DEFAULT_STALL_TIMEOUT  # seconds an end may move nothing; 0: off
    rate_limit: float | None = None
    parallel: int = 1
    buffer: int = 16 * MiB
    encrypt: str | None = None
    overwrite: bool = True
    transport: str | None = None  # None: the config's defaults.transport

    def __post_init__(self) -> None:
        if not self.destinations:
            raise UsageError("a copy needs at least one destination")
        if len(set(self.destinations)) != len(self.destinations):
            raise UsageError("a destination is listed twice")
        if self.source in self.destinations:
            raise UsageError(f"{self.source}: the source is also a destination")
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("compress", self.compress, COMPRESS_CHOICES)
        _choice("verify", self.verify, DIGESTS)
        if self.transport is not None:
            _choice("transport", self.transport, TRANSPORTS)
        if self.level is not None and self.compress in ("zstd", "lz4"):
            get_codec(self.compress).check_level(self.level)
        if self.checkpoint_interval < MiB:
            raise UsageError("--checkpoint-interval: at least 1M")
        if not 0 <= self.retries <= 100:
            raise UsageError(f"--retries: expected 0..100, got {self.retries}")
        if not 0 <= self.stall_timeout <= MAX_STALL_TIMEOUT:
            raise UsageError(
                f"--stall-timeout: expected 0..{MAX_STALL_TIMEOUT:g} seconds (0: off),"
                f" got {self.stall_timeout:g}"
            )
        if not 1 <= self.parallel <= 16:
            raise UsageError(f"--parallel: expected 1..16, got {self.parallel}")
        if self.buffer < MiB:
            raise UsageError("--buffer: at least 1M")
        if self.source == "-" and self.parallel > 1:
            raise UsageError("--parallel needs a file source, not stdin")

    def key(self) -> str:
        """A fingerprint of what is copied where and how: a rerun of the same job finds it."""
        data = {
            "source": self.source,
            "destinations": sorted(self.destinations),
            "recursive": self.recursive,
            "encrypt": self.encrypt,
            "verify": self.verify,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["destinations"] = list(self.destinations)
        return data


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f'{name}: expected one of {", ".join(choices)}, got "{value}"')


_FIELDS = {f.name: f for f in dataclasses.fields(CopyJob)}


def job_from_mapping(data: Mapping[str, Any], *, what: str = "job") -> CopyJob:
    """Build a job from a parsed TOML/YAML/JSON document; sizes and rates may be strings."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, list(_FIELDS), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise UsageError(f"{what}: unknown field {key}{hint}")
        values[key] = _coerce(key, value, what)
    for required in ("source", "destinations"):
        if required not in values:
            raise UsageError(f"{what}: {required} is required")
    return CopyJob(**values)


def _coerce(key: str, value: Any, what: str) -> Any:
    def bad(expected: str) -> UsageError:
        return UsageError(f"{what}: {key}: expected {expected}, got {json.dumps(value)}")

    if key == "destinations":
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    if key in ("checkpoint_interval", "buffer"):
        if isinstance(value, str):
            return parse_size(value, key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad('a size like "64M"')
    if key == "rate_limit":
        if value is None:
            return None
        if isinstance(value, str):
            return parse_rate(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise bad('a rate like "20M"')
    if key in ("recursive", "fail_fast", "overwrite"):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key == "stall_timeout":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise bad("a number of seconds")
        return float(value)
    if key in ("level", "retries", "parallel"):
        if value is None and key == "level":
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if not isinstance(value, str) and not (value is None and key in ("encrypt", "transport")):
        raise bad("a string")
    return value


def job_schema() -> dict[str, Any]:
    """JSON Schema of a job file (``difpipe copy --schema``)."""
    size = {"anyOf": [{"type": "integer", "minimum": MiB}, {"type": "string"}]}
    props: dict[str, Any] = {
        "source": {"type": "string", "description": "host:path, a local path, or - for stdin"},
        "destinations": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "host:path, local paths, or - for stdout",
        },
        "recursive": {"type": "boolean", "default": False, "description": "copy a directory"},
        "strategy": {"enum": list(STRATEGIES), "default": "auto"},
        "compress": {"enum": list(COMPRESS_CHOICES), "default": "auto"},
        "level": {"type": ["integer", "null"], "description": "compression level"},
        "verify": {"enum": list(DIGESTS), "default": "sha256"},
        "checkpoint_interval": {**size, "default": "64M"},
        "retries": {"type": "integer", "minimum": 0, "maximum": 100, "default": 3},
        "fail_fast": {
            "type": "boolean",
            "default": False,
            "description": "one destination failing stops the others; nothing lands",
        },
        "stall_timeout": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_STALL_TIMEOUT,
            "default": DEFAULT_STALL_TIMEOUT,
            "description": "seconds a destination may take no data before it fails (retryable)"
            " and the others go on, and a remote source may send none before the attempt fails"
            " (retryable); 0: no limit",
        },
        "rate_limit": {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string"},
                {"type": "null"},
            ],
            "description": 'bytes per second, or a string like "20M"',
        },
        "parallel": {"type": "integer", "minimum": 1, "maximum": 16, "default": 1},
        "buffer": {**size, "default": "16M", "description": "memory per destination"},
        "encrypt": {"type": ["string", "null"], "description": "key file for AES-256-GCM"},
        "overwrite": {"type": "boolean", "default": True},
        "transport": {
            "enum": [*TRANSPORTS, None],
            "default": None,
            "description": "how remote files stream: openssh (one ssh process per remote"
            " end), asyncssh (inside difpipe), auto; null: the config's defaults.transport",
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "difpipe copy job",
        "type": "object",
        "additionalProperties": False,
        "required": ["source", "destinations"],
        "properties": props,
    }


@dataclass
class DestinationResult:
    destination: str
    status: str = "pending"  # pending | done | failed | skipped
    bytes: int = 0
    digest: str | None = None
    error: str | None = None
    exit_code: int = 0
    resumed_from: int = 0
    transport: str = "local"  # how its stream went: local | asyncssh | openssh

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CopyResult:
    transfer_id: str
    source: str
    status: str  # done | partial | failed | interrupted
    bytes: int = 0
    total: int | None = None
    seconds: float = 0.0
    strategy: str = ""
    codec: str = "none"
    codec_reason: str = ""
    verify: str = "sha256"
    digest: str | None = None
    resumed_from: int = 0
    destinations: list[DestinationResult] = field(default_factory=list)
    transport: str = "local"  # how the source's stream went: local | asyncssh | openssh

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["rate"] = round(self.rate, 1)
        return data
