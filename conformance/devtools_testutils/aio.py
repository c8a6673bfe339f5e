"""``devtools_testutils.aio``: the async counterpart of ``recorded_by_proxy``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from devtools_testutils import _accepted_kwargs

__all__ = ["recorded_by_proxy_async"]


def recorded_by_proxy_async(test: Callable[..., Any]) -> Callable[..., Any]:
    """Runs the test as it is: live and not recording, there is no proxy to route through."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await test(*args, **_accepted_kwargs(test, kwargs))

    return run
