"""Suite-wide pytest set-up: the repository root is importable (tests.sim.* helpers), and
a failed test that ran on a namespace cluster shows the telling lines of its agents' logs
(the cluster, and its logs with it, is removed after the test)."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    from cluster import Cluster
    from cluster.log_digest import digest
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Cluster) and value.run_dir.exists():
            report.sections.append((f"agentd logs of cluster {value.name}", digest(value.run_dir)))
