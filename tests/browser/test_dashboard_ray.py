"""The newcomer flow of tests/browser/test_dashboard.py on a dashboard started with ``DPCORE_EXECUTOR=ray``.

The server joins the test session's local Ray (``RAY_ADDRESS``, tests/ray_support.py): the preset run
trains in a Ray actor and reports through the store writer, and the browser sees exactly what it
sees with local processes. Anything the flow leaves training is killed through Ray afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import test_dashboard as flow
from tests.browser.conftest import CHROMIUM, SKIP_REASON, serve_app
from tests.ray_support import ray_cluster  # noqa: F401 - the session's Ray

pytestmark = [pytest.mark.browser, pytest.mark.ray, pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                                                       reason=SKIP_REASON)]


@pytest.fixture
def ray_app_url(tmp_path: Path, ray_cluster: str) -> Iterator[str]:  # noqa: F811
    from dpcore.runs.executors.ray import NAMESPACE, run_actor_name
    from dpcore.runs.store import RunStore

    data_dir = tmp_path / "data"
    try:
        with serve_app(data_dir, {"DPCORE_EXECUTOR": "ray", "RAY_ADDRESS": ray_cluster}) as (url, _proc):
            yield url
    finally:
        import ray

        if (data_dir / "runs.sqlite3").exists():
            for run in RunStore(data_dir).list_runs(status=("queued", "running")):
                try:
                    ray.kill(ray.get_actor(run_actor_name(run.id), namespace=NAMESPACE), no_restart=True)
                except ValueError:
                    pass  # its actor already ended


def test_newcomer_flow_with_runs_on_ray(context, ray_app_url):
    page = flow.open_page(context, ray_app_url)
    flow.expect(page.get_by_text("Runs train on: a Ray cluster of 1 node(s), 2 CPUs")).to_be_visible()
    page.close()
    flow.test_newcomer_starts_a_preset_watches_it_learn_and_finds_it_on_compare(context, ray_app_url)
