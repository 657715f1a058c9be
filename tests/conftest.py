"""Shared pytest fixtures: the real-sshd lab (see tests/lab) and an ssh-agent holding its key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import Lab, LabUnavailable

MARKERS = {
    "lab": "needs the real-sshd test lab (OpenSSH sshd binaries)",
    "netns": "needs root and network namespaces (skipped on the loopback fallback)",
}


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, description in MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the lab, so ``-m "not lab"`` runs without sshd."""
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Five real sshd hosts: edge, cloud, storage, bastion and inner (behind bastion)."""
    try:
        instance = Lab.start()
    except LabUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(autouse=True)
def _lab_hygiene(request: pytest.FixtureRequest) -> Iterator[None]:
    """Skip ``netns`` tests on the loopback lab, and undo a test's faults whatever its outcome."""
    if "lab" not in request.fixturenames:
        yield
        return
    instance: Lab = request.getfixturevalue("lab")
    if request.node.get_closest_marker("netns") and not instance.netns:
        pytest.skip(f"needs network namespaces: {instance.fallback_reason}")
    yield
    instance.heal_all()


@pytest.fixture
def lab_config(lab: Lab, tmp_path: Path) -> Path:
    """A DifPipe config file describing every lab host."""
    return lab.write_config(tmp_path / "difpipe.toml")


@pytest.fixture
def ssh_agent(lab: Lab) -> Iterator[str]:
    """The socket of a running ssh-agent that holds the lab client key.

    The socket is not exported: pass it on (``agent_path=``, or ``SSH_AUTH_SOCK`` in the
    environment of one subprocess) where a test wants the agent.
    """
    agent = lab.start_agent()
    try:
        yield str(agent.socket)
    finally:
        agent.close()
