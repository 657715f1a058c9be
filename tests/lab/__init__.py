"""A lab of real OpenSSH servers for DifPipe's integration tests.

:meth:`Lab.start` builds five hosts, each a real ``sshd`` with its own host key: ``edge``,
``cloud``, ``storage`` and ``bastion`` are reachable from the test process, ``inner`` only
through ``bastion``. As root, each host lives in its own network namespace (see
:mod:`tests.lab.net` for the address plan) and tests can cut, drop, cap and delay its traffic;
elsewhere every sshd listens on a 127.0.0.1 port and the network faults skip.

The pytest fixtures that hand the lab to tests live in ``tests/conftest.py``.
"""

from .agent import SshAgent
from .lab import HOST_NAMES, Lab, LabHost, remove_stale
from .proxy import DelayProxy
from .system import INSTALL_HINT, LabError, LabUnavailable

__all__ = [
    "HOST_NAMES",
    "INSTALL_HINT",
    "DelayProxy",
    "Lab",
    "LabError",
    "LabHost",
    "LabUnavailable",
    "SshAgent",
    "remove_stale",
]
