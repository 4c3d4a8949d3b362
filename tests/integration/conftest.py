"""Fixtures of the tests that talk to Stripe: a fake Stripe server per module, and the platform's
own Stripe account (billing) pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from processes import fake_stripe_server

PLATFORM_KEY = "sk_test_x"
WEBHOOK_SECRET = "whsec_test"


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[str]:
    with fake_stripe_server() as url:
        yield url


@pytest.fixture
def platform_stripe(fake_stripe: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The platform's Stripe account on the fake server, with its webhook secret and the default
    dunning delays."""
    from billing import collection
    from core.settings import get_settings

    local = type(get_settings())(**{**get_settings().__dict__, "stripe_api_base": fake_stripe})
    monkeypatch.setattr(collection, "get_settings", lambda: local)
    monkeypatch.setenv("STRIPE_API_BASE", fake_stripe)
    monkeypatch.setenv("STRIPE_SECRET_KEY", PLATFORM_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.delenv("BILLING_INTAKE_REFUSED_AFTER_DAYS", raising=False)
    return fake_stripe
