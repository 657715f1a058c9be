"""SSH key generation and known_hosts lines for the lab."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from .system import LabError, tail


def generate_ed25519(paths: Iterable[Path], comment: str) -> None:
    """Create unencrypted ed25519 key pairs at ``paths``, all ``ssh-keygen`` runs in parallel."""
    running = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.with_name(path.name + ".keygen.log")
        with log.open("w") as out:
            argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        running.append((path, log, proc))
    failed = []
    for path, log, proc in running:
        if proc.wait(timeout=30) != 0:
            failed.append(f"{path}: {tail(log)}")
        log.unlink(missing_ok=True)
    if failed:
        raise LabError("ssh-keygen failed: " + "; ".join(failed))


def public_line(private_key: Path) -> str:
    """The public key line (``ssh-ed25519 AAAA... comment``) of a generated key."""
    return private_key.with_name(private_key.name + ".pub").read_text().strip()


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare on port 22, ``[addr]:port`` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


def known_hosts_line(address: str, port: int, public: str) -> str:
    key_type, key_data = public.split()[:2]
    return f"{known_hosts_name(address, port)} {key_type} {key_data}"
