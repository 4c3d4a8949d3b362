"""Customers' figures kept by the order paths (capture, cancellation, returns) always equal the
recount from their orders, and so does the migration's backfill; consent given with an order is
recorded and a consent not given changes nothing; and promotions, through the orders' hook, are
applied to what capture stores, refuse orders, are released for a resend and are given back on
cancellation and return."""

from __future__ import annotations

import importlib.util
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from test_orders import ORDERS, act_ok, cancel, capture, get_order, kinds, problems_of, run_outbox_inline
from test_refund_ledger import setup
from test_returns import RETURNS, accept_returns, opened

from factories import bearer, create_tenant, unique

PARIS_ADDRESS = {"country": "FR", "name": "Bea Buyer", "line1": "1 rue de Rivoli", "city": "Paris",
                 "postcode": "75001", "latitude": 48.8566, "longitude": 2.3522}


def body(*lines: tuple[str, int, int, int], email: str, channel: str = "web", pickup: str | None = None,
         shipping: int = 0, discount: int = 0, **extra: Any) -> dict[str, Any]:
    """An order of (sku, quantity, unit price, line discount) lines whose totals add up."""
    total = sum(q * p - d for _, q, p, d in lines) - discount + shipping
    return {
        "channel": channel, "currency": "EUR",
        "lines": [{"sku": s, "quantity": q, "unit_price_minor": p, "discount_minor": d} for s, q, p, d in lines],
        "customer": {"email": email, "name": "Bea Buyer"},
        "delivery": {"mode": "pickup", "pickup_location": pickup} if pickup else {"mode": "ship",
                                                                                 "address": PARIS_ADDRESS},
        "shipping_fee_minor": shipping, "discount_minor": discount, "total_minor": total,
        "payment": {"provider": "external", "method": "card", "authorized_minor": total}, **extra}


@pytest.fixture
def no_promotions(monkeypatch: pytest.MonkeyPatch) -> None:
    from orders import promotion_hook

    monkeypatch.setattr(promotion_hook, "_registered", [])


async def customer_ids(tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    from core.db import get_database
    from customers.models import Customer

    async with get_database().transaction(tenant_id=tenant_id) as session:
        rows = await session.execute(select(Customer.email, Customer.id).where(Customer.tenant_id == tenant_id))
        return {email: customer_id for email, customer_id in rows}


async def stored_and_recounted(tenant_id: uuid.UUID) -> tuple[dict[uuid.UUID, Any], dict[uuid.UUID, Any]]:
    from core.db import get_database
    from customers.service import stats_of
    from orders.customer_stats import recount

    ids = list((await customer_ids(tenant_id)).values())
    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await stats_of(session, tenant_id, ids), await recount(session, tenant_id, ids)


async def shipped(client: AsyncClient, tenant: Any, order_body: dict[str, Any]) -> dict[str, Any]:
    created = await capture(client, tenant.api_key, order_body)
    await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, tenant.api_key, created["id"])
    await act_ok(client, tenant.api_key, order["fulfilments"][0]["id"], "accept", "pick", "pack", "ship")
    return await get_order(client, tenant.api_key, created["id"])


async def returned(client: AsyncClient, tenant: Any, location: str, order_id: str, *lines: tuple[int, int]) -> None:
    made = await opened(client, tenant.api_key, order_id, *lines, method="post", location=location)
    received = await client.post(f"{RETURNS}/{made['id']}/receive", json={"location": location},
                                 headers=bearer(tenant.api_key))
    assert received.status_code == 200, received.text


def load_backfill() -> str:
    path = Path(__file__).parents[2] / "platform" / "migrations" / "versions" / "0020_marketing.py"
    spec = importlib.util.spec_from_file_location("migration_0020", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.BACKFILL_CUSTOMER_STATS)


async def test_kept_figures_equal_the_recount_after_random_work(client, no_promotions) -> None:
    tenant, c = await setup(client)
    key = tenant.api_key
    await accept_returns(client, key, c["wh"])
    rng = random.Random(19)
    emails = [f"{unique('stats')}@example.test" for _ in range(4)]

    # A shipped order, partly returned, then returned in full: its shipping stays in the value.
    first = await shipped(client, tenant, body((c["sku"], 3, 999, 0), (c["sku2"], 1, 4000, 100), email=emails[0],
                                               shipping=500, discount=101))
    await returned(client, tenant, c["wh"], first["id"], (1, 1))
    await returned(client, tenant, c["wh"], first["id"], (1, 2), (2, 1))

    made = []
    for _ in range(14):
        lines = [(c["sku"], rng.randint(1, 4), rng.choice([999, 2500, 1333]), rng.choice([0, 0, 50]))]
        if rng.random() < 0.5:
            lines.append((c["sku2"], rng.randint(1, 3), 4000, 0))
        pickup = c["store"] if rng.random() < 0.3 else None
        order = await capture(client, key, body(
            *lines, email=rng.choice(emails), channel=rng.choice(["web", "store", "marketplace", "phone"]),
            pickup=pickup, shipping=0 if pickup else rng.choice([0, 490]), discount=rng.choice([0, 0, 77]),
            external_number=unique("EXT")))
        made.append(order)
    # A partial cancellation then the rest of the order: wholly cancelled in two steps.
    twice = await capture(client, key, body((c["sku2"], 2, 4000, 0), (c["sku"], 1, 999, 0), email=emails[1],
                                            shipping=490, discount=33))
    for lines in ([{"line_no": 1, "quantity": 1}], None):
        assert (await cancel(client, key, twice["id"], lines=lines)).status_code == 200
    done = {"whole": 0, "part": 0}
    for order in made:
        roll = rng.random()
        if roll < 0.25:
            response = await cancel(client, key, order["id"])
        elif roll < 0.6:
            line = order["lines"][0]
            response = await cancel(client, key, order["id"], lines=[
                {"line_no": 1, "quantity": rng.randint(1, line["quantity"])}])
        else:
            continue
        assert response.status_code == 200, response.text
        done["whole" if response.json()["status"] == "cancelled" else "part"] += 1
    assert done["whole"] and done["part"], done
    stored, recounted = await stored_and_recounted(tenant.tenant_id)
    assert stored == recounted
    assert len(stored) == 4
    whole = recounted[(await customer_ids(tenant.tenant_id))[emails[0]]]
    assert whole.channels and "shoes" in whole.categories
    assert sum(s.orders_count for s in stored.values()) >= 1
    assert any(s.stores for s in stored.values())

    # The migration's backfill counts the same from the orders.
    from core.db import get_database

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await session.execute(text(
            "UPDATE customers SET orders_count = 0, lifetime_value_minor = 0, first_order_at = NULL, "
            "last_order_at = NULL, channels = '{}', stores = '{}', categories = '{}' WHERE tenant_id = :t"),
            {"t": tenant.tenant_id})
        await session.execute(text(load_backfill()), {"tenant": tenant.tenant_id})
    again, _ = await stored_and_recounted(tenant.tenant_id)
    assert again == recounted


async def test_a_wholly_cancelled_order_counts_nothing_and_a_return_takes_its_value_off(client,
                                                                                        no_promotions) -> None:
    tenant, c = await setup(client)
    await accept_returns(client, tenant.api_key, c["wh"])
    email = f"{unique('one')}@example.test"
    kept = await shipped(client, tenant, body((c["sku"], 2, 2500, 0), email=email, shipping=500))
    gone = await capture(client, tenant.api_key, body((c["sku2"], 1, 4000, 0), email=email, channel="phone",
                                                      shipping=300))
    assert (await cancel(client, tenant.api_key, gone["id"])).status_code == 200
    await returned(client, tenant, c["wh"], kept["id"], (1, 1))

    customer = (await customer_ids(tenant.tenant_id))[email]
    stored, recounted = await stored_and_recounted(tenant.tenant_id)
    assert stored == recounted
    figures = stored[customer]
    assert (figures.orders_count, figures.lifetime_value_minor) == (1, 3000)
    assert figures.channels == {"web", "phone"} and figures.categories == {"shoes", "coats"}


async def test_consent_given_with_an_order_is_recorded_and_none_leaves_it(client, no_promotions) -> None:
    from core.db import get_database
    from customers.service import get_customer, set_consent, unsubscribe

    tenant, c = await setup(client)
    email = f"{unique('consent')}@example.test"

    async def record() -> Any:
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            return await get_customer(session, tenant.tenant_id, (await customer_ids(tenant.tenant_id))[email])

    async def order(**consent: Any) -> None:
        data = body((c["sku"], 1, 2500, 0), email=email)
        data["customer"].update(consent)
        await capture(client, tenant.api_key, data)

    await order(email_consent=True)
    first = await record()
    assert (first.email_consent, first.sms_consent) == (True, False) and first.consent_updated_at is not None
    await order()
    await order(email_consent=True, sms_consent=False)  # what it is already: nothing changes
    same = await record()
    assert (same.email_consent, same.sms_consent, same.consent_updated_at) == (True, False, first.consent_updated_at)
    assert same.orders_count == 3 and same.lifetime_value_minor == 7500
    await order(sms_consent=True)
    both = await record()
    assert (both.email_consent, both.sms_consent) == (True, True)
    assert both.consent_updated_at is not None and both.consent_updated_at > first.consent_updated_at

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await unsubscribe(session, tenant.tenant_id, both.id)
    out = await record()
    assert (out.email_consent, out.sms_consent) == (False, True) and out.unsubscribed_at is not None
    await order(email_consent=False)
    assert (await record()).unsubscribed_at == out.unsubscribed_at
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await set_consent(session, tenant.tenant_id, both.id, email=True, sms=None)
    back = await record()
    assert (back.email_consent, back.sms_consent, back.unsubscribed_at) == (True, True, None)

    from core.problems import ProblemError

    stranger = await create_tenant()
    for unsubscribing in (False, True):
        async with get_database().transaction(tenant_id=stranger.tenant_id) as session:
            with pytest.raises(ProblemError) as refused:
                if unsubscribing:
                    await unsubscribe(session, stranger.tenant_id, both.id)
                else:
                    await set_consent(session, stranger.tenant_id, both.id, email=False, sms=None)
        assert refused.value.status == 404
    assert (await record()).email_consent is True


class FakePromotions:
    """Discounts every order by fixed amounts (1.00 off its first line, 2.00 off the order, 3.00
    off shipping), refuses one whose codes include REFUSE, and records what it is asked."""

    def __init__(self) -> None:
        self.priced: list[Any] = []
        self.released: list[uuid.UUID] = []
        self.given_back: list[tuple[uuid.UUID, dict[int, int], bool]] = []

    async def price(self, session: Any, principal: Any, requests: list[Any]) -> list[Any]:
        from orders.promotion_hook import PricingOutcome

        self.priced.append(requests)
        outcomes = []
        for request in requests:
            if "REFUSE" in request.coupon_codes:
                outcomes.append(PricingOutcome(refusal={"coupon_codes[0]": "Code REFUSE has expired."}))
                continue
            outcomes.append(PricingOutcome(
                line_discounts=(100,) + (0,) * (len(request.lines) - 1), order_discount_minor=200,
                shipping_discount_minor=min(300, request.shipping_fee_minor), notes=("Fake: -6.00 EUR",)))
        return outcomes

    async def release(self, session: Any, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]) -> None:
        self.released += order_ids

    async def give_back(self, session: Any, tenant_id: uuid.UUID, order_id: uuid.UUID, *, units: dict[int, int],
                        whole: bool) -> None:
        self.given_back.append((order_id, units, whole))


async def test_capture_applies_the_promotions_outcome_and_they_are_given_back(client, monkeypatch) -> None:
    from orders import promotion_hook

    fake = FakePromotions()
    monkeypatch.setattr(promotion_hook, "_registered", [fake])
    tenant, c = await setup(client)
    key = tenant.api_key
    await accept_returns(client, key, c["wh"])
    email = f"{unique('promo')}@example.test"
    number = unique("WEB")
    sent = body((c["sku"], 2, 2500, 0), (c["sku2"], 1, 4000, 0), email=email, shipping=500,
                external_number=number, coupon_codes=[" save15 ", "SAVE15", "other"])

    order = await capture(client, key, sent)
    [[request]] = fake.priced
    assert request.coupon_codes == ("SAVE15", "OTHER")
    assert (str(request.order_id), request.order_number) == (order["id"], order["number"])
    assert (request.shipping_fee_minor, request.discount_minor, len(request.lines)) == (500, 0, 2)
    assert [(line.line_no, line.category) for line in request.lines] == [(1, "shoes"), (2, "coats")]
    assert (order["subtotal_minor"], order["discount_minor"], order["shipping_fee_minor"], order["total_minor"]) == (
        8900, 200, 200, 8900)
    assert [(line["discount_minor"], line["order_discount_minor"]) for line in order["lines"]] == [
        (100, 110), (0, 90)]
    full = await get_order(client, key, order["id"])
    [received] = [e for e in full["events"] if e["kind"] == "order.received"]
    assert received["data"]["promotions"] == ["Fake: -6.00 EUR"]

    # A resend is priced with the others, then released: it was not stored.
    again = await client.post(ORDERS, json=sent, headers=bearer(key))
    assert again.status_code == 200 and again.json()["id"] == order["id"]
    assert len(fake.released) == 1 and str(fake.released[0]) != order["id"]

    # Refused by the promotions: the order's problems, nothing stored; a refused resend gets the stored one.
    refused = await client.post(ORDERS, json=body((c["sku"], 1, 2500, 0), email=email, coupon_codes=["refuse"]),
                                headers=bearer(key))
    assert problems_of(refused) == {"coupon_codes[0]": "Code REFUSE has expired."}
    resent = await client.post(ORDERS, json={**sent, "coupon_codes": ["REFUSE"]}, headers=bearer(key))
    assert resent.status_code == 200 and resent.json()["id"] == order["id"]
    assert len(fake.released) == 3
    # A blank code is the order's own problem, listed before promotions are asked.
    bad = await client.post(ORDERS, json=body((c["sku"], 1, 2500, 0), email=email, coupon_codes=[" "]),
                            headers=bearer(key))
    assert "coupon_codes[0]" in problems_of(bad)

    customer = (await customer_ids(tenant.tenant_id))[email]
    stored, recounted = await stored_and_recounted(tenant.tenant_id)
    assert stored == recounted and stored[customer].lifetime_value_minor == 8900

    # Cancelling gives back the units; the last of the order gives the whole.
    other = await capture(client, key, body((c["sku"], 3, 1000, 0), email=email))
    assert (await cancel(client, key, other["id"], lines=[{"line_no": 1, "quantity": 1}])).status_code == 200
    assert (await cancel(client, key, other["id"])).status_code == 200
    assert fake.given_back == [(uuid.UUID(other["id"]), {1: 1}, False), (uuid.UUID(other["id"]), {1: 2}, True)]

    # A return gives back its units; whole once nothing of the order is kept.
    await run_outbox_inline(tenant.tenant_id)
    routed = await get_order(client, key, order["id"])
    await act_ok(client, key, routed["fulfilments"][0]["id"], "accept", "pick", "pack", "ship")
    fake.given_back.clear()
    await returned(client, tenant, c["wh"], order["id"], (1, 1))
    await returned(client, tenant, c["wh"], order["id"], (1, 1), (2, 1))
    assert fake.given_back == [(uuid.UUID(order["id"]), {1: 1}, False),
                               (uuid.UUID(order["id"]), {1: 1, 2: 1}, True)]
    stored, recounted = await stored_and_recounted(tenant.tenant_id)
    assert stored == recounted
    assert stored[customer].orders_count == 1 and stored[customer].lifetime_value_minor == 200
    assert "order.received" in kinds(full)
