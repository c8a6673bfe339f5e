"""A small stand-in for the Azure SDK's ``devtools_testutils``, for live runs only.

The Azure SDK's keyvault test suites import their test helpers from ``devtools_testutils``, which
lives in the SDK repository and is not published. This package provides the part of its interface
those suites use, written for one situation: tests run live, without the recording test proxy,
against a Strongroom server. Sanitizers and matchers configure the proxy, so here they do nothing.

Credentials come from the environment that ``conformance/run.py`` sets:
``CONFORMANCE_TENANT_ID``, ``CONFORMANCE_CLIENT_ID``, ``CONFORMANCE_CLIENT_SECRET`` and
``CONFORMANCE_AUTHORITY`` (the server's token issuer, e.g. ``https://localhost:8443``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

__all__ = [
    "AzureMgmtPreparer",
    "AzureRecordedTestCase",
    "EnvironmentVariableLoader",
    "PowerShellPreparer",
    "is_live",
    "is_live_and_not_recording",
    "recorded_by_proxy",
    "remove_batch_sanitizers",
    "set_bodiless_matcher",
    "set_custom_default_matcher",
    "set_default_session_settings",
    "set_headerless_matcher",
    "test_proxy",
]

_TRUE = {"true", "yes", "1", "on"}

# Names from get_resource_name must differ between runs (a vault keeps soft-deleted names) yet be
# the same for the same test and prefix within a run, as the upstream helper's are.
_RUN_SALT = os.environ.get("CONFORMANCE_RUN_ID") or secrets.token_hex(4)

# How many credentials for the server get_credential has made in this process; the plugin marks
# a test that made one as talking to the server ("live" in the junit report).
credentials_issued = 0


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def is_live() -> bool:
    return _env_flag("AZURE_TEST_RUN_LIVE")


def is_live_and_not_recording() -> bool:
    return is_live() and _env_flag("AZURE_SKIP_LIVE_RECORDING")


def _accepted_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``fn`` can take: all of them if it has ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params}
    return {k: v for k, v in kwargs.items() if k in names}


def recorded_by_proxy(test: Callable[..., Any]) -> Callable[..., Any]:
    """Runs the test as it is: live and not recording, there is no proxy to route through."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return test(*args, **_accepted_kwargs(test, kwargs))

    return run


@pytest.fixture(scope="session")
def test_proxy() -> None:
    """The test proxy is not needed live without recording; upstream skips it then too."""


def _no_op(*args: Any, **kwargs: Any) -> None:
    """Sanitizers and matchers only configure the test proxy."""


remove_batch_sanitizers = _no_op
set_bodiless_matcher = _no_op
set_custom_default_matcher = _no_op
set_default_session_settings = _no_op
set_headerless_matcher = _no_op


def __getattr__(name: str) -> Any:
    # Every add_<kind>_sanitizer is a no-op; there are two dozen of them upstream.
    if name.startswith("add_") and name.endswith("_sanitizer"):
        return _no_op
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _setting(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set; run the suites through conformance/run.py")
    return value


class AzureRecordedTestCase:
    """Base class of the SDK's test classes and client preparers."""

    @property
    def is_live(self) -> bool:
        return is_live()

    def is_playback(self) -> bool:
        return not is_live()

    def get_credential(self, client_class: Any, *, is_async: bool = False, **kwargs: Any) -> Any:
        """A client-secret credential for the server's token issuer.

        ``AZURE_TENANT_ID`` wins over the run's tenant when a test sets it, as upstream: keys'
        multitenant test starts from a random tenant (with ``additionally_allowed_tenants``)
        and expects the challenge to name the right one. Other keywords go to the credential.
        """
        global credentials_issued
        credentials_issued += 1
        if is_async:
            from azure.identity.aio import ClientSecretCredential as Credential
        else:
            from azure.identity import ClientSecretCredential as Credential  # type: ignore[assignment]
        return Credential(
            os.environ.get("AZURE_TENANT_ID") or _setting("CONFORMANCE_TENANT_ID"),
            _setting("CONFORMANCE_CLIENT_ID"),
            _setting("CONFORMANCE_CLIENT_SECRET"),
            authority=_setting("CONFORMANCE_AUTHORITY"),
            disable_instance_discovery=True,
            **kwargs,
        )

    def create_client_from_credential(
        self, client_class: Any, credential: Any, **kwargs: Any
    ) -> Any:
        kwargs.setdefault("logging_enable", True)
        return client_class(credential=credential, **kwargs)

    def create_random_name(self, name: str) -> str:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        digest = hashlib.sha256(f"{_RUN_SALT}|{test}|{name}".encode()).hexdigest()
        return f"{name}{digest[:10]}"

    def get_resource_name(self, name: str) -> str:
        return self.create_random_name(name)

    def sleep(self, seconds: float) -> None:
        if self.is_live:
            time.sleep(seconds)

    @staticmethod
    def await_prepared_test(test: Callable[..., Any]) -> Callable[..., Any]:
        """Makes an async (prepared) test synchronous, running it on a new event loop."""

        @functools.wraps(test)
        def run(test_class_instance: Any, *args: Any, **kwargs: Any) -> Any:
            coroutine = test(test_class_instance, *args, **_accepted_kwargs(test, kwargs))
            return asyncio.run(coroutine)

        return run


def _without(fn: Callable[..., Any], names: set[str]) -> inspect.Signature:
    signature = inspect.signature(fn)
    kept = [p for p in signature.parameters.values() if p.name not in names]
    return signature.replace(parameters=kept)


def _inject(
    fn: Callable[..., Any], names: set[str], provide: Callable[[], dict[str, Any]]
) -> Callable[..., Any]:
    """Wraps ``fn`` so that it receives ``provide()`` as extra keyword arguments when it runs.

    The wrapper's signature leaves out ``names`` (what it provides), so pytest does not look for
    fixtures of those names, and keeps the rest (``self``, parametrized arguments, fixtures).
    """
    if inspect.iscoroutinefunction(fn):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **_accepted_kwargs(fn, {**provide(), **kwargs}))

        wrapper: Callable[..., Any] = run_async
    else:

        def run(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **_accepted_kwargs(fn, {**provide(), **kwargs}))

        wrapper = run
    functools.update_wrapper(wrapper, fn)
    del wrapper.__wrapped__  # type: ignore[attr-defined]
    wrapper.__signature__ = _without(fn, names)  # type: ignore[attr-defined]
    return wrapper


class EnvironmentVariableLoader:
    """``@EnvironmentVariableLoader("keyvault", azure_keyvault_url="https://fake")``.

    Live, each keyword becomes the environment variable of its upper-cased name (which must be
    set); in playback it is the given default.
    """

    def __init__(self, directory: str, **defaults: Any) -> None:
        self.directory = directory
        self.defaults = defaults

    def values(self) -> dict[str, Any]:
        if not is_live():
            return dict(self.defaults)
        return {key: _setting(key.upper()) for key in self.defaults}

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return _inject(fn, set(self.defaults), self.values)


PowerShellPreparer = EnvironmentVariableLoader


class AzureMgmtPreparer(AzureRecordedTestCase):
    """Base of resource preparers: ``create_resource`` returns keyword arguments for the test.

    No keyvault suite decorates a test with one today; ``_shared/preparer.py`` subclasses it.
    """

    def __init__(
        self,
        name_prefix: str,
        random_name_length: int,
        random_name_enabled: bool = False,
        disable_recording: bool = True,
        playback_fake_resource: Any = None,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.name_prefix = name_prefix
        self.random_name_length = random_name_length
        self.random_name_enabled = random_name_enabled
        self.client_kwargs = client_kwargs or {}
        self.resource_kwargs = kwargs

    def create_resource(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return {}

    def remove_resource(self, name: str, **kwargs: Any) -> None:
        """Nothing to remove: resources here are made by run.py before the run."""

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def provide() -> dict[str, Any]:
            name = self.create_random_name(self.name_prefix)[: self.random_name_length]
            return self.create_resource(name, **self.resource_kwargs)

        # Like upstream's preparers, the test takes everything but ``self`` from the preparer.
        names = set(inspect.signature(fn).parameters) - {"self"}
        return _inject(fn, names, provide)
