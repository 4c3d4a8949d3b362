"""A company's billing account: opened at sign-up on the default plan with its free trial, the
billing details printed on its invoices (with the VAT number checked), and plan changes, from
the next period or at once (each plan's base fee then prorated over its part of the period)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing import config, periods, plans, vat
from billing.models import BillingAccount, BillingPeriod, Plan
from core import clock
from core import validation as v
from core.auth import Principal
from core.ids import uuid7
from core.problems import ProblemError, invalid
from tenants.service import Actor, audit, on_tenant_created, tenant_profile

WHEN = ("next_period", "now")
TRUSTED_CHECKS = ("format", "vies_valid", "not_checked")  # a VAT number that passed its checksum
VIES_UNKNOWN = ("VIES, the EU's register, does not know this VAT number: check it, or leave it empty to be "
                "invoiced as a consumer.")
LIMITS = {"legal_name": 200, "address_line1": 200, "address_line2": 200, "postcode": 20, "city": 100,
          "billing_email": 320}


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ProblemError(403, "Forbidden", "Only an owner or admin of the company manages its billing.")


async def open_account(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """The company's account on the default plan, and its first period: the free trial (to the local
    midnight after its last day), or with a plan that has none, the rest of the current month. Does
    nothing if the account exists."""
    tenant = await tenant_profile(session, tenant_id)
    if tenant is None:
        raise LookupError(f"no company {tenant_id}")
    now = clock.now()
    plan = await plans.default_plan(session, now)
    trial_end = periods.trial_end(now, plan.trial_days, tenant.timezone) if plan.trial_days else None
    opened = await session.scalar(
        insert(BillingAccount).values(tenant_id=tenant_id, id=uuid7(), plan_code=plan.code, trial_ends_at=trial_end,
                                      legal_name=tenant.name[:LIMITS["legal_name"]], country=tenant.country)
        .on_conflict_do_nothing(index_elements=["tenant_id"]).returning(BillingAccount.id))
    if opened is None:
        return  # opened already (by another transaction at the same moment, say)
    session.add(BillingPeriod(tenant_id=tenant_id, starts_at=now,
                              ends_at=trial_end or periods.next_month_start(now, tenant.timezone),
                              trial=trial_end is not None, plans=[plans.segment(plan, now)]))
    await session.flush()


on_tenant_created(open_account)


async def account_of(session: AsyncSession, tenant_id: uuid.UUID, *, lock: bool = False) -> BillingAccount:
    """The company's account, opened now if it has none (a company from before billing)."""
    query = select(BillingAccount).where(BillingAccount.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    account = await session.scalar(query)
    if account is None:
        await open_account(session, tenant_id)
        account = await session.scalar(query)
    assert account is not None
    return account


async def open_period(session: AsyncSession, tenant_id: uuid.UUID, *, lock: bool = False) -> BillingPeriod | None:
    query = (select(BillingPeriod).where(BillingPeriod.tenant_id == tenant_id, BillingPeriod.status == "open")
             .order_by(BillingPeriod.starts_at).limit(1))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


def checked_vat_number(account: BillingAccount) -> str | None:
    """The account's VAT number if its check passed (VIES unreachable leaves the checksum's word)."""
    return account.vat_number if account.vat_number and account.vat_check in TRUSTED_CHECKS else None


# --- billing details --------------------------------------------------------------------------


@dataclass
class BillingDetails:
    legal_name: str = ""
    address_line1: str = ""
    address_line2: str = ""
    postcode: str = ""
    city: str = ""
    country: str = ""
    billing_email: str = ""
    vat_number: str = ""


def country_problem(country: str) -> str | None:
    code = (country or "").strip().upper()
    if not code:
        return "Choose the country where the company is established."
    if len(code) != 2 or not code.isalpha():
        return f"Unknown country {country.strip()!r}: use a two-letter country code such as FR or US."
    if not vat.known_country(code):
        return f"We don't bill companies in {code} yet: choose the company's country, such as FR or US."
    return None


def _details_problems(details: BillingDetails) -> tuple[dict[str, str], str | None, str | None]:
    """(every problem by field, the VAT number compacted, the billing email normalised)."""
    errors: dict[str, str] = {}
    if problem := v.check_required(details.legal_name, "the company's legal name", max_length=LIMITS["legal_name"]):
        errors["legal_name"] = problem
    for name, label in (("address_line1", "the address"), ("address_line2", "the address's second line"),
                        ("postcode", "the postcode"), ("city", "the city")):
        if len(getattr(details, name).strip()) > LIMITS[name]:
            errors[name] = f"Use at most {LIMITS[name]} characters for {label}."
    if problem := country_problem(details.country):
        errors["country"] = problem
    email: str | None = None
    if details.billing_email.strip():
        email, problem = v.check_email(details.billing_email)
        if problem or email is None:
            errors["billing_email"] = problem or "This is not a valid email address."
        elif len(email) > LIMITS["billing_email"]:
            errors["billing_email"] = f"Use at most {LIMITS['billing_email']} characters for the email address."
    country = details.country.strip().upper() if "country" not in errors else ""
    number, problem = vat.check_number(details.vat_number, country)
    if problem:
        errors["vat_number"] = problem
    return errors, number, email


async def update_details(session: AsyncSession, principal: Principal, details: BillingDetails, *,
                         ip: str | None = None) -> BillingAccount:
    """Record what the invoices print about the company. Every problem is named at once and
    nothing changes while one is left. An empty VAT number bills the company as a consumer. With
    the online check on, a number VIES does not know is refused; VIES out of reach saves it as
    "not_checked" (checked by its format only)."""
    _require_admin(principal)
    errors, number, email = _details_problems(details)
    check, consultation = "format", None
    if number is not None and not errors and config.vies_enabled():
        check, consultation = await vat.verify_online(number)  # before any lock: it may take seconds
        if check == "vies_invalid":
            errors["vat_number"] = VIES_UNKNOWN
    if errors:
        raise invalid(errors)
    account = await account_of(session, principal.tenant_id, lock=True)
    account.legal_name = details.legal_name.strip()
    account.address_line1 = details.address_line1.strip()
    account.address_line2 = details.address_line2.strip()
    account.postcode = details.postcode.strip()
    account.city = details.city.strip()
    account.country = details.country.strip().upper()
    account.billing_email = email or ""
    if number is None:
        account.vat_number = account.vat_check = account.vat_checked_at = account.vat_consultation = None
    else:
        account.vat_number, account.vat_check, account.vat_consultation = number, check, consultation
        account.vat_checked_at = clock.now()
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "billing.details_updated",
                target=account.legal_name, country=account.country, vat_number=account.vat_number,
                vat_check=account.vat_check)
    return account


def rate_text(rate_bp: int) -> str:
    """2000 → "20 %", 2550 → "25.5 %"."""
    whole, hundredths = divmod(rate_bp, 100)
    return f"{whole}{f'.{hundredths:02d}'.rstrip('0') if hundredths else ''} %"


def vat_check_message(country: str, vat_number: str) -> tuple[bool, str]:
    """What the VAT number typed means, as it is typed: (acceptable, in plain words)."""
    code = (country or "").strip().upper()
    if country_problem(code):
        return False, "Choose the billing country first: the VAT number must be one of that country."
    number, problem = vat.check_number(vat_number, code)
    if problem:
        return False, problem
    decision = vat.decide(config.issuer(), code, number)
    rate = f"VAT at {rate_text(decision.rate_bp)} applies"
    consequence = {"reverse_charge": "reverse charge applies", "domestic": rate, "eu_consumer": rate,
                   "outside_eu": "no VAT is charged (outside the EU)",
                   "export": "no VAT is charged"}[decision.treatment]
    if number is None:
        return True, f"No VAT number: invoiced as a consumer, {consequence}."
    adjective = vat.adjective(code)
    whose = f"Valid {adjective} VAT number" if adjective else f"Valid VAT number of {vat.country_name(code)}"
    return True, f"{whose}: {consequence}"


# --- plan changes ----------------------------------------------------------------------------


async def _plan_problem(session: AsyncSession, account: BillingAccount, code: str, when: str
                        ) -> tuple[dict[str, str], Plan | None]:
    errors: dict[str, str] = {}
    if when not in WHEN:
        errors["when"] = "Choose when the change applies: from the next period (next_period) or now (now)."
    now = clock.now()
    plan = await plans.plan_version(session, code.strip(), now) if code and code.strip() else None
    offered = ", ".join(p.code for p in await plans.plans_on_offer(session))
    if plan is None:
        errors["plan"] = f"Unknown plan {code.strip()!r}: choose one of {offered}."
    elif plans.is_retired(plan, now):
        errors["plan"] = f"The {plan.name} plan is no longer offered: choose one of {offered}."
    elif when == "next_period" and plan.code == account.next_plan_code:
        errors["plan"] = f"The change to the {plan.name} plan is already planned for the next period."
    elif plan.code == account.plan_code and (when == "now" or account.next_plan_code is None):
        errors["plan"] = f"The company is on the {plan.name} plan already."
    return errors, plan


async def change_plan(session: AsyncSession, principal: Principal, code: str, when: str, *,
                      ip: str | None = None) -> BillingAccount:
    """"next_period": the plan the next period starts on (choosing the current plan again cancels a
    planned change); "now": the open period gets a new plan segment from now, and the invoice
    prorates each plan's base fee over its part of the period."""
    _require_admin(principal)
    tenant_id = principal.tenant_id
    await account_of(session, tenant_id)  # opened if need be, before the locks
    period = await open_period(session, tenant_id, lock=True)  # the period first, as the close does
    account = await account_of(session, tenant_id, lock=True)
    errors, plan = await _plan_problem(session, account, code, when)
    if errors:
        raise invalid(errors)
    assert plan is not None
    before = account.plan_code
    if when == "next_period":
        account.next_plan_code = None if plan.code == account.plan_code else plan.code
        target = f"{before} → {account.next_plan_code or before} from the next period"
    else:
        if period is None:
            raise ProblemError(409, "Try again", "The billing period is being closed: try again in a moment.")
        period.plans = [*period.plans, plans.segment(plan, clock.now())]
        account.plan_code, account.next_plan_code = plan.code, None
        target = f"{before} → {plan.code} now"
    await audit(session, tenant_id, Actor.of(principal, ip), "billing.plan_changed", target=target,
                plan=plan.code, version=plan.version, when=when)
    return account
