"""Billing's pure parts: graduated tiers, calendar months in a company's time zone (daylight
saving included), periods that meet at local midnights, prorating, VAT decisions and VAT number
checks, an invoice's printed payment terms and plan names, and what a restricted account may do."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from billing import vat
from billing.config import Issuer
from billing.periods import (
    day_start,
    midnight_on_or_after,
    month_length,
    month_start,
    next_month_start,
    share,
    trial_end,
)
from billing.plans import TierCharge, charges, price, until_next_tier

STARTER_ORDERS = {"included": 500, "tiers": [{"up_to": 5000, "unit_minor": 20}, {"up_to": None, "unit_minor": 12}]}
PARIS_ISSUER = Issuer(code="FR19812345676", name="OMS Platform SAS", address="10 rue de la Paix\n75002 Paris",
                      country="FR", vat_number="FR19812345676", timezone="Europe/Paris")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- tiers -------------------------------------------------------------------------------------


def test_no_usage_shows_the_included_units_only() -> None:
    assert charges(STARTER_ORDERS, 0) == [TierCharge("included", 0, 0, 0)]
    assert price(STARTER_ORDERS, 0) == 0


def test_exactly_the_included_units_cost_nothing() -> None:
    assert charges(STARTER_ORDERS, 500) == [TierCharge("included", 500, 0, 0)]
    assert charges(STARTER_ORDERS, 501) == [TierCharge("included", 500, 0, 0), TierCharge("501 to 5000", 1, 20, 20)]


def test_tiers_are_graduated_each_unit_at_its_own_tier_price() -> None:
    assert charges(STARTER_ORDERS, 7000) == [
        TierCharge("included", 500, 0, 0),
        TierCharge("501 to 5000", 4500, 20, 90_000),
        TierCharge("5001 and above", 2000, 12, 24_000),
    ]
    assert price(STARTER_ORDERS, 7000) == 114_000


def test_huge_quantities_stay_exact() -> None:
    quantity = 10**12
    assert price(STARTER_ORDERS, quantity) == 4500 * 20 + (quantity - 5000) * 12
    assert charges(STARTER_ORDERS, quantity)[-1] == TierCharge("5001 and above", quantity - 5000, 12,
                                                               (quantity - 5000) * 12)


def test_a_plan_without_included_units_or_with_a_tier_inside_them() -> None:
    no_included = {"included": 0, "tiers": [{"up_to": None, "unit_minor": 1500}]}
    assert charges(no_included, 3) == [TierCharge("1 and above", 3, 1500, 4500)]
    assert charges(no_included, 0) == []
    swallowed = {"included": 10, "tiers": [{"up_to": 5, "unit_minor": 99}, {"up_to": None, "unit_minor": 7}]}
    assert charges(swallowed, 12) == [TierCharge("included", 10, 0, 0), TierCharge("11 and above", 2, 7, 14)]


def test_units_until_the_price_changes() -> None:
    assert until_next_tier(STARTER_ORDERS, 0) == (500, 20)
    assert until_next_tier(STARTER_ORDERS, 499) == (1, 20)
    assert until_next_tier(STARTER_ORDERS, 500) == (4500, 12)
    assert until_next_tier(STARTER_ORDERS, 4999) == (1, 12)
    assert until_next_tier(STARTER_ORDERS, 5000) is None
    assert until_next_tier(STARTER_ORDERS, 10**12) is None
    same_price = {"included": 0, "tiers": [{"up_to": 10, "unit_minor": 5}, {"up_to": 20, "unit_minor": 5},
                                           {"up_to": None, "unit_minor": 3}]}
    assert until_next_tier(same_price, 4) == (16, 3)
    assert until_next_tier({"included": 0, "tiers": []}, 4) is None


# --- months and daylight saving ------------------------------------------------------------------


def test_paris_october_ends_at_local_midnight_after_the_clocks_went_back() -> None:
    # Summer time ends on 25 October 2026: 1 November starts at 00:00 CET, 23:00 UTC the day before.
    inside = utc("2026-10-20T12:00:00")
    assert month_start(inside, "Europe/Paris") == utc("2026-09-30T22:00:00")
    assert next_month_start(inside, "Europe/Paris") == utc("2026-10-31T23:00:00")
    assert month_length(inside, "Europe/Paris") == timedelta(days=31, hours=1)


def test_paris_march_is_an_hour_short() -> None:
    inside = utc("2026-03-15T12:00:00")
    assert month_start(inside, "Europe/Paris") == utc("2026-02-28T23:00:00")
    assert next_month_start(inside, "Europe/Paris") == utc("2026-03-31T22:00:00")
    assert month_length(inside, "Europe/Paris") == timedelta(days=31, hours=-1)


def test_new_york_months_around_its_clock_changes() -> None:
    # Daylight time ends at 02:00 on 1 November 2026: that midnight is still EDT (UTC-4).
    assert next_month_start(utc("2026-10-31T12:00:00"), "America/New_York") == utc("2026-11-01T04:00:00")
    assert next_month_start(utc("2026-11-15T12:00:00"), "America/New_York") == utc("2026-12-01T05:00:00")
    assert month_length(utc("2026-11-15T12:00:00"), "America/New_York") == timedelta(days=30, hours=1)
    # An instant that is still October in New York though November in UTC.
    assert month_start(utc("2026-11-01T03:59:00"), "America/New_York") == utc("2026-10-01T04:00:00")
    assert month_start(utc("2026-11-01T04:00:00"), "America/New_York") == utc("2026-11-01T04:00:00")


def test_a_month_start_begins_its_own_month_and_december_rolls_the_year() -> None:
    start = utc("2026-10-31T23:00:00")
    assert month_start(start, "Europe/Paris") == start
    assert next_month_start(start, "Europe/Paris") == utc("2026-11-30T23:00:00")
    assert next_month_start(utc("2026-12-15T00:00:00"), "Europe/Paris") == utc("2026-12-31T23:00:00")


def test_period_boundaries_are_local_midnights() -> None:
    # 20 October 2026, 10:00 in Paris (CEST); the clocks go back on 25 October.
    signup = utc("2026-10-20T08:00:00")
    assert day_start(signup, "Europe/Paris") == utc("2026-10-19T22:00:00")
    assert midnight_on_or_after(signup, "Europe/Paris") == utc("2026-10-20T22:00:00")
    assert midnight_on_or_after(utc("2026-10-19T22:00:00"), "Europe/Paris") == utc("2026-10-19T22:00:00")
    # 14 days of the calendar later is 3 November, 10:00 CET: the trial ends at that day's end.
    assert trial_end(signup, 14, "Europe/Paris") == utc("2026-11-03T23:00:00")
    assert trial_end(utc("2026-10-19T22:00:00"), 14, "Europe/Paris") == utc("2026-11-02T23:00:00")  # a midnight
    # Late evening in New York is the next day in UTC: the day is New York's.
    assert day_start(utc("2026-11-02T03:30:00"), "America/New_York") == utc("2026-11-01T04:00:00")
    assert trial_end(utc("2026-11-02T03:30:00"), 14, "America/New_York") == utc("2026-11-16T05:00:00")


def test_share_rounds_half_up_in_integers() -> None:
    assert share(3900, timedelta(days=1), timedelta(days=30)) == 130
    assert share(100, timedelta(seconds=1), timedelta(seconds=2)) == 50
    assert share(1, timedelta(seconds=1), timedelta(seconds=2)) == 1  # 0.5 rounds up
    assert share(1, timedelta(seconds=1), timedelta(seconds=3)) == 0  # 0.33 rounds down
    assert share(2, timedelta(seconds=1), timedelta(seconds=3)) == 1  # 0.67 rounds up
    assert share(3900, timedelta(days=31, hours=1), timedelta(days=31, hours=1)) == 3900
    assert share(10**15, timedelta(days=1), timedelta(days=3)) == 333_333_333_333_333
    with pytest.raises(ValueError):
        share(1, timedelta(0), timedelta(0))


# --- VAT -----------------------------------------------------------------------------------------


def test_french_consumer_pays_french_vat() -> None:
    decision = vat.decide(PARIS_ISSUER, "FR", None)
    assert (decision.rate_bp, decision.treatment, decision.mentions) == (2000, "domestic", [])
    assert vat.vat_of(3900, 2000) == 780


def test_german_business_with_a_valid_vat_number_is_reverse_charged() -> None:
    number, problem = vat.check_number("DE 136 695 976", "DE")
    assert (number, problem) == ("DE136695976", None)
    decision = vat.decide(PARIS_ISSUER, "DE", number)
    assert (decision.rate_bp, decision.treatment) == (0, "reverse_charge")
    assert decision.mentions == ["Reverse charge", "Autoliquidation"]


def test_belgian_consumer_pays_belgian_vat() -> None:
    decision = vat.decide(PARIS_ISSUER, "BE", None)
    assert (decision.rate_bp, decision.treatment, decision.mentions) == (2100, "eu_consumer", [])


def test_us_company_pays_no_vat_with_the_outside_eu_mention() -> None:
    decision = vat.decide(PARIS_ISSUER, "US", None)
    assert (decision.rate_bp, decision.treatment) == (0, "outside_eu")
    assert decision.mentions == [
        "VAT not applicable: services supplied outside the EU (article 44 of Directive 2006/112/EC)"]


def test_a_french_business_pays_french_vat_all_the_same() -> None:
    assert vat.decide(PARIS_ISSUER, "FR", "FR19812345676").treatment == "domestic"


def test_vat_number_with_a_wrong_check_digit_is_refused() -> None:
    number, problem = vat.check_number("DE136695977", "DE")
    assert number is None and problem is not None and "check digits" in problem


def test_vat_number_of_another_country_than_the_billing_country_is_refused() -> None:
    number, problem = vat.check_number("DE136695976", "BE")
    assert number is None and problem is not None
    assert "German VAT number" in problem and "Belgium" in problem


def test_vat_numbers_typed_without_prefix_or_with_greece_as_gr() -> None:
    assert vat.check_number("136695976", "DE") == ("DE136695976", None)
    assert vat.check_number("GR094259216", "GR") == ("EL094259216", None)
    assert vat.check_number("", "DE") == (None, None)
    number, problem = vat.check_number("123456", "US")
    assert number is None and problem is not None and "United States" in problem
    assert vat.check_number("GB 980 7806 84", "GB") == ("GB980780684", None)


def test_vat_rounds_half_up() -> None:
    assert vat.vat_of(1, 2000) == 0  # 0.2
    assert vat.vat_of(5, 1000) == 1  # 0.5 rounds up
    assert vat.vat_of(10**15, 2000) == 2 * 10**14


def test_known_countries() -> None:
    assert vat.known_country("fr") and vat.known_country("US")
    assert not vat.known_country("XX") and not vat.known_country("France") and not vat.known_country("")


async def test_vies_out_of_reach_is_recorded_as_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: object, **kwargs: object) -> object:
        raise OSError("no network")

    monkeypatch.setattr(vat.eu_vat, "check_vies_approx", unreachable)
    assert await vat.verify_online("DE136695976") == ("not_checked", None)

    def valid(*args: object, **kwargs: object) -> object:
        return {"valid": True, "requestIdentifier": "WAPIAAAAW1234567"}

    monkeypatch.setattr(vat.eu_vat, "check_vies_approx", valid)
    assert await vat.verify_online("DE136695976") == ("vies_valid", "WAPIAAAAW1234567")


# --- the printed invoice ---------------------------------------------------------------------------


def _invoice(**columns: object) -> object:
    from billing.models import Invoice

    values: dict[str, object] = {
        "kind": "invoice", "number": "INV-2026-000042", "issued_at": utc("2026-11-01T00:30:00"),
        "period_start": utc("2026-10-19T22:00:00"), "period_end": utc("2026-10-31T23:00:00"),
        "issuer": {**PARIS_ISSUER.to_dict(), "legal": "SAS au capital de 10 000 € · RCS Paris 812 345 676"},
        "customer": {"name": "Beispiel GmbH", "country": "DE", "vat_number": "DE136695976"},
        "plan": "Starter, then Growth", "currency": "EUR", "subtotal_minor": 3900, "vat_rate_bp": 0, "vat_minor": 0,
        "total_minor": 3900, "vat_treatment": "reverse_charge", "vat_mentions": ["Reverse charge", "Autoliquidation"],
        "status": "open", "local_only": False, "credited_minor": 0, "reason": ""}
    return Invoice(**{**values, **columns})


def test_a_french_invoice_prints_its_payment_terms_and_the_pdf_says_the_same() -> None:
    from billing.display import LATE_PENALTY, invoice_document
    from billing.models import InvoiceLine
    from billing.pdf import invoice_pdf

    line = InvoiceLine(position=1, description="Starter plan, 20 Oct 2026 to 31 Oct 2026 (prorated)", dimension="base",
                       quantity=1, unit_price_minor=3900, amount_minor=3900)
    doc = invoice_document(_invoice(), [line], timezone="Europe/Paris", locale="en")  # type: ignore[arg-type]
    assert doc.terms == ["Payment terms: paid by card on issue.", "Due date: 1 November 2026.", LATE_PENALTY,
                         "Fixed indemnity for recovery costs, owed by a business customer paying late: €40.00 "
                         "(Code de commerce, article L441-10)."]
    assert doc.issuer_lines[-1] == "SAS au capital de 10 000 € · RCS Paris 812 345 676"
    import zlib

    content = invoice_pdf(doc)
    streams = b"".join(zlib.decompress(chunk) for chunk in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content,
                                                                       re.DOTALL) if chunk[:1] == b"x")
    # The plan's name in words the PDF's font has (no "?" for a missing arrow), and the terms.
    assert b"Starter, then" in streams and b"?" not in streams
    for words in ("three times the legal interest rate", "Due date: 1 November 2026.", "RCS Paris 812 345 676"):
        assert words.encode("cp1252") in streams, words

    local = invoice_document(_invoice(local_only=True, customer={"name": "Atelier", "country": "FR"}), [],
                             timezone="Europe/Paris", locale="en")  # type: ignore[arg-type]
    assert local.terms == ["Payment terms: due on receipt.", "Due date: 1 November 2026.", LATE_PENALTY]
    free = invoice_document(_invoice(total_minor=0, subtotal_minor=0, status="paid"), [], timezone="Europe/Paris",
                            locale="en")  # type: ignore[arg-type]
    assert free.terms[0] == "Payment terms: nothing to pay."
    abroad = invoice_document(_invoice(issuer={**PARIS_ISSUER.to_dict(), "country": "DE"}), [],
                              timezone="Europe/Paris", locale="en")  # type: ignore[arg-type]
    assert abroad.terms == ["Payment terms: paid by card on issue.", "Due date: 1 November 2026."]
    note = invoice_document(_invoice(kind="credit_note", number="CN-2026-000001", status="applied"), [],
                            timezone="Europe/Paris", locale="en")  # type: ignore[arg-type]
    assert note.terms == []


# --- restrictions ----------------------------------------------------------------------------------


def test_a_restricted_account_may_still_create_an_api_key() -> None:
    from billing.restrictions import refusal

    for standing in ("restricted", "intake_refused"):
        assert refusal("POST", "/app/settings/api-keys", standing) is None
        assert refusal("POST", "/api/v1/api-keys", standing) is None
        assert refusal("POST", "/app/settings/api-keys/0190/revoke", standing) is None
        assert refusal("PUT", "/api/v1/api-keys/0190", standing)  # changing one stays refused
        assert refusal("POST", "/app/settings/webhooks", standing)
