"""One real local Ray (2 CPUs) for the whole test session, shared by every module that imports
``ray_cluster``: Ray's start-up is heavy, so the first module that needs it starts it and the session's
end shuts it down. Tests that use it carry the ``ray`` mark (``pytest -m ray`` selects them, ``-m "not ray"``
leaves them out) and skip with a reason where Ray is not installed (``pip install -r requirements-ray.txt``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

FAKE = f"{Path(__file__).parent / 'fake_training.py'}:run_training"
RAY_CPUS = 2
_users = 0


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address of the session's local Ray (for servers started as subprocesses: ``RAY_ADDRESS``).

    Imported into several modules, this fixture may be set up once per module that holds it; a
    count makes the first set-up start Ray and the last tear-down stop it.
    """
    global _users
    ray = pytest.importorskip("ray", reason="the Ray executor's tests need ray: pip install -r requirements-ray.txt")
    if not ray.is_initialized():
        # address="local": a new Ray of our own, never one another program left running on this machine
        ray.init(address="local", num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    _users += 1
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        _users -= 1
        if _users == 0:
            ray.shutdown()
