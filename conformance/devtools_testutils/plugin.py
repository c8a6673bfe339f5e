"""pytest plugin for live conformance runs (``-p devtools_testutils.plugin``).

- Registers and applies the SDK repository's ``live_test_only`` / ``playback_test_only`` markers,
  which its root conftest skips by mode.
- Puts back third-party test APIs that the suites call but current releases removed
  (``compat.py``: pyOpenSSL's ``crypto.load_certificate_request``).
- Registers the ``test_proxy`` fixture for every suite, as upstream's tooling does: keys'
  ``conftest.py`` asks for it without importing it (secrets' and certificates' import it).
- Records ``live=1`` among the junit properties of each test that built a client for the server
  through ``AzureRecordedTestCase.get_credential`` (the rest run against mocks).
- With ``CONFORMANCE_MAX_SLEEP``, caps ``time.sleep`` and ``asyncio.sleep`` in the tests.
- Applies the plan ``conformance/run.py`` writes to the JSON file ``CONFORMANCE_PLAN``:
  ``{"exclude": [{"pattern": ..., "reason": ...}], "first": [pattern, ...]}``, patterns being
  fnmatch patterns on node ids. Excluded tests are deselected, and each process writes the node
  ids it deselected, with their reason, to ``CONFORMANCE_DESELECTED_DIR``. Tests matching a
  ``first`` pattern move to the front, so that pytest-xdist starts long tests early.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

import pytest

import devtools_testutils
from devtools_testutils import compat, is_live

# A fixture defined in (or imported into) a plugin module is available to every test.
from devtools_testutils import test_proxy as test_proxy


def _cap_sleeps(limit: float) -> None:
    """``time.sleep`` and ``asyncio.sleep`` wait at most ``limit`` seconds (the suites' fixed
    waits are for the real service's timing, not for anything they check)."""
    import asyncio
    import time

    sleep, async_sleep = time.sleep, asyncio.sleep

    def capped(seconds: float) -> None:
        sleep(min(seconds, limit))

    async def async_capped(seconds: float, result: Any = None) -> Any:
        return await async_sleep(min(seconds, limit), result)

    time.sleep = capped
    asyncio.sleep = async_capped  # type: ignore[assignment]


def pytest_configure(config: pytest.Config) -> None:
    compat.install()
    limit = os.environ.get("CONFORMANCE_MAX_SLEEP")
    if limit:
        _cap_sleeps(float(limit))
    config.addinivalue_line("markers", "live_test_only: run only live")
    config.addinivalue_line("markers", "playback_test_only: run only in playback")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if is_live() and item.get_closest_marker("playback_test_only"):
        pytest.skip("playback test only")
    if not is_live() and item.get_closest_marker("live_test_only"):
        pytest.skip("live test only")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    before = devtools_testutils.credentials_issued
    try:
        return (yield)
    finally:
        if devtools_testutils.credentials_issued > before:
            item.user_properties.append(("live", "1"))


def _plan() -> dict[str, Any]:
    path = os.environ.get("CONFORMANCE_PLAN")
    return dict(json.loads(Path(path).read_text())) if path else {}


def _matches(item: pytest.Item, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(item.nodeid, pattern) for pattern in patterns)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    plan = _plan()
    first = plan.get("first", [])
    if first:
        # A stable sort: every worker sees the same order, as pytest-xdist requires.
        items.sort(key=lambda item: not _matches(item, first))
    exclusions = plan.get("exclude", [])
    if not exclusions:
        return
    kept: list[pytest.Item] = []
    excluded: dict[str, str] = {}
    for item in items:
        reason = next(
            (e["reason"] for e in exclusions if fnmatch.fnmatchcase(item.nodeid, e["pattern"])),
            None,
        )
        if reason is None:
            kept.append(item)
        else:
            excluded[item.nodeid] = reason
    if not excluded:
        return
    config.hook.pytest_deselected(items=[i for i in items if i.nodeid in excluded])
    items[:] = kept
    out = os.environ.get("CONFORMANCE_DESELECTED_DIR")
    if out:
        # Each xdist worker collects (and deselects) the same items; one file per process.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(out, f"deselected-{worker}.json").write_text(json.dumps(excluded, indent=1))
