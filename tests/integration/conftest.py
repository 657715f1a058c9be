"""The copy harness of the engine's integration tests, once for each transport."""

from __future__ import annotations

import pytest

from tests.integration.test_copy import TRANSPORTS, Harness


@pytest.fixture(params=TRANSPORTS)
def h(lab, tmp_path, request):
    """A :class:`Harness` (config, pool, store, engine) over the lab, with asyncssh or OpenSSH
    legs; at the end no ssh process or private OpenSSH directory of its engine is left."""
    harness = Harness(lab, tmp_path, request.param)
    yield harness
    harness.check_nothing_left()
    harness.store.close()
