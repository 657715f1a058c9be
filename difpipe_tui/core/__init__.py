"""The DifPipe engine. Nothing under this package imports Textual."""

from __future__ import annotations

import ctypes.util
import functools
import glob
import os
import sys

# asyncssh looks for nettle (UMAC) and liboqs (post-quantum key exchange) with
# ctypes.util.find_library when it is imported. That runs `ldconfig -p` for every name it tries,
# and for a library missing from the loader's cache (liboqs, here) gcc and ld as well: about ten
# processes and 50-100 ms at the start of every command. The loader (dlopen) only ever finds a
# library in LD_LIBRARY_PATH, the directories of /etc/ld.so.conf or the system's default ones,
# so looking there directly gives asyncssh the same libraries.

_ASYNCSSH_LIBS = ("oqs", "liboqs", "nettle", "libnettle", "libnettle-6")
_DEFAULT_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")


def _ld_conf_dirs(path: str, depth: int = 0) -> list[str]:
    dirs: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return dirs
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and depth < 4:
            pattern = line.split(None, 1)[1] if " " in line else ""
            if pattern and not os.path.isabs(pattern):
                pattern = os.path.join(os.path.dirname(path), pattern)
            for inc in sorted(glob.glob(pattern)):
                dirs.extend(_ld_conf_dirs(inc, depth + 1))
        elif line.startswith("/"):
            dirs.append(line)
    return dirs


@functools.cache
def _system_dirs() -> tuple[str, ...]:
    """The directories of /etc/ld.so.conf and the default ones, read once."""
    return (*_ld_conf_dirs("/etc/ld.so.conf"), *_DEFAULT_DIRS)


def _loader_dirs() -> tuple[str, ...]:
    env = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    return (*env, *_system_dirs())


@functools.cache
def _names_in(directory: str) -> tuple[str, ...]:
    """A directory's entries, listed once: asyncssh asks for five names, and a system's library
    directory holds a thousand or more (a glob per name listed it five times, ~15 ms)."""
    try:
        return tuple(os.listdir(directory))
    except OSError:
        return ()


def _find_in_loader_path(name: str) -> str | None:
    prefix = f"lib{name}.so"
    for d in _loader_dirs():
        found = [n for n in _names_in(d) if n.startswith(prefix)]
        if found:
            # the soname (lib.so.8) before the full version (lib.so.8.6) and the bare .so
            return os.path.join(d, min(found, key=lambda n: (n.endswith(".so"), len(n), n)))
    return None


_find_library = ctypes.util.find_library


def _find_library_fast(name: str) -> str | None:
    if name in _ASYNCSSH_LIBS:
        return _find_in_loader_path(name)
    return _find_library(name)


if sys.platform.startswith("linux"):
    ctypes.util.find_library = _find_library_fast

# asyncssh loads its X.509 certificate support (cryptography.x509, ~20 ms of every command's
# start) whenever it can, and goes without it when that import fails. DifPipe, like OpenSSH,
# authenticates hosts and users with SSH keys and OpenSSH certificates only, never X.509 ones:
# a None in sys.modules makes that one import fail. An asyncssh already loaded keeps its own.
if "asyncssh" not in sys.modules:
    sys.modules.setdefault("asyncssh.crypto.x509", None)  # type: ignore[assignment]
