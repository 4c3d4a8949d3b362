"""Simulation of promotions: the draft beside the version in force on a sample cart, and a replay
of recent orders under the draft ("what would last week's orders have been discounted, which
promotion applied to each, and why the others did not?").

Both read and never write: nothing is consumed. A replay prices the orders as their channels sent
them (the discounts promotions added at capture are taken back out, from their redemptions),
oldest first, with every limit whole at the start and counted within the replay, so that a
budget or a usage limit the draft would reach shows at the order that reaches it.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from customers import segments as customer_segments
from inventory import catalog
from marketing import pricing, promotions, settings
from marketing import segments as marketing_segments
from marketing.models import Redemption
from marketing.schemas import CartIn
from orders.promotion_hook import PricingRequest
from orders.simulation import recent_pricing_requests
from rules import promotions as pure
from rules import service as rule_sets
from rules.facts import Moment
from rules.segments import CustomerFacts

MAX_DAYS = 90
MAX_ORDERS = 10_000
LIMIT_REASONS = ("limit_reached", "customer_limit_reached", "budget_spent")
_NOBODY = uuid.UUID(int=0)  # how ``pricing.quote`` names a cart with no known customer


async def draft_compiled(session: AsyncSession, principal: Principal,
                         ) -> tuple[dict[str, Any], pure.CompiledPromotions]:
    """The promotions draft and its compiled form; refused with every problem when it does not hold."""
    rule_set = await rule_sets.rule_set_of(session, principal, promotions.KIND)
    problems = await promotions.problems(session, principal.tenant_id, rule_set.draft)
    if problems:
        raise rule_sets.problems_error(problems)
    return rule_set.draft, pure.compile_document(rule_set.draft)


def _named(trace: tuple[pure.Verdict, ...], segments: Mapping[str, str]) -> tuple[pure.Verdict, ...]:
    """Verdicts with segments named as people know them, not by id."""
    out = []
    for verdict in trace:
        message = verdict.message
        for segment_id, name in segments.items():
            if segment_id in message:
                message = message.replace(segment_id, f"“{name}”")
        out.append(verdict if message == verdict.message else dataclasses.replace(verdict, message=message))
    return tuple(out)


# --- a sample cart -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PricedLine:
    sku: str
    quantity: int
    amount_minor: int  # unit price times quantity, less the shop's own discount
    discount_minor: int  # the promotions'
    net_minor: int


@dataclass(frozen=True)
class Side:
    """The cart under one candidate: the draft, or the version in force (``pricing`` None: none)."""

    label: str
    version: int | None
    pricing: pure.Pricing | None
    lines: tuple[PricedLine, ...] = ()
    shipping_fee_minor: int = 0
    before_minor: int = 0  # to pay without promotions
    total_minor: int = 0  # to pay with them
    amounts: Mapping[str, int] = field(default_factory=dict)  # applied promotion -> its amount


@dataclass(frozen=True)
class SampleResult:
    at: datetime
    currency: str
    customer: str | None
    customer_known: bool
    segments: list[str]  # the names of those the customer is in
    coupons: list[tuple[str, str]]  # code, what it does or what is wrong with it
    draft: Side
    in_force: Side


def _side(label: str, quote: pricing.Quote | None, segments: Mapping[str, str]) -> Side:
    if quote is None:
        return Side(label, None, None)
    priced, request = quote.pricing, quote.request
    lines = []
    for i, line in enumerate(request.lines):
        amount = line.unit_price_minor * line.quantity - line.discount_minor
        discount = priced.line_discounts[i] if i < len(priced.line_discounts) else 0
        lines.append(PricedLine(line.sku, line.quantity, amount, discount, amount - discount))
    before = sum(line.amount_minor for line in lines) + request.shipping_fee_minor
    return Side(label, quote.version, dataclasses.replace(priced, trace=_named(priced.trace, segments)),
                tuple(lines), request.shipping_fee_minor, before, before - priced.total_discount_minor,
                {a.promotion_id: a.amount_minor for a in priced.applied})


def _coupon_words(states: tuple[pure.CouponState, ...], names: Mapping[str, str]) -> list[tuple[str, str]]:
    words = []
    for state in states:
        if state.problem:
            words.append((state.code, pure.coupon_message(state).removeprefix(f"Code {state.code} ")))
        else:
            promotion = names.get(state.promotion_id or "", state.promotion_id or "")
            words.append((state.code, f"is valid (for {promotion})" if promotion else "is valid"))
    return words


async def with_catalog_prices(session: AsyncSession, tenant_id: uuid.UUID, cart: CartIn,
                              unpriced: Collection[int]) -> CartIn:
    """The cart with the catalog's price on the lines given none (by index); unknown SKUs keep 0
    (pricing says they are unknown)."""
    if not unpriced:
        return cart
    products = await catalog.products_by_sku(session, tenant_id, {cart.lines[i].sku for i in unpriced})
    lines = [msgspec.structs.replace(line, unit_price_minor=products[line.sku].price_minor)
             if i in unpriced and line.sku in products else line for i, line in enumerate(cart.lines)]
    return msgspec.structs.replace(cart, lines=lines)


async def price_sample(session: AsyncSession, principal: Principal, cart: CartIn, *,
                       unpriced: Collection[int] = ()) -> SampleResult:
    """The cart under the draft and under the version in force at its time, each with its trace.
    Limits are as they stand (what is left now); nothing is used up."""
    document, compiled = await draft_compiled(session, principal)
    cart = await with_catalog_prices(session, principal.tenant_id, cart, unpriced)
    draft = await pricing.quote(session, principal, cart, compiled=compiled)
    current = await pricing.quote(session, principal, cart, at=draft.at)
    segments = await promotions.segment_names(session, principal.tenant_id)
    names = {str(p.get("id")): str(p.get("name")) for p in document.get("promotions") or [] if isinstance(p, dict)}
    in_force = _side(f"v{current.version} (in force)", current, segments) if current.version is not None \
        else Side("In force: none", None, None)
    known = draft.request.customer_id != _NOBODY
    member_of = await marketing_segments.segments_of(
        session, principal.tenant_id, draft.request.customer_id, timezone=principal.timezone,
        currency=principal.currency) if known else []
    return SampleResult(
        at=draft.at, currency=principal.currency, customer=cart.customer.email if cart.customer else None,
        customer_known=known, segments=[s.name for s in member_of],
        coupons=_coupon_words(draft.pricing.coupons, names), draft=_side("Draft", draft, segments),
        in_force=in_force)


# --- a replay of recent orders -----------------------------------------------------------------------

@dataclass
class ReplayRow:
    order: str
    placed_at: datetime
    currency: str
    amount_minor: int  # to pay as the channel sent it
    discount_minor: int  # the draft's promotions
    applied: list[tuple[str, int]]  # name, amount
    amounts: dict[str, int]  # promotion id -> amount
    trace: tuple[pure.Verdict, ...]
    limits: list[str]  # "Summer 15 %: budget spent", when the replay reaches a limit


@dataclass
class PromotionTotal:
    promotion_id: str
    name: str
    orders: int = 0
    amounts: dict[str, int] = field(default_factory=dict)  # currency -> discount
    limit_reached_at: str | None = None  # the first order it could not apply to for a limit


@dataclass
class ReplayResult:
    days: int
    limit: int
    orders: int
    discounted: int
    totals: dict[str, int]  # currency -> discount
    promotions: list[PromotionTotal]
    rows: list[ReplayRow]
    seconds: float = 0.0


def as_sent(requests: list[PricingRequest], redemptions: list[Redemption]) -> list[PricingRequest]:
    """The orders as their channels sent them: what promotions added at capture taken back out
    (line class from the lines' discounts, order class from the order's, shipping back on the
    fee), and the codes they were redeemed with."""
    by_order: dict[uuid.UUID, list[Redemption]] = {}
    for redemption in redemptions:
        by_order.setdefault(redemption.order_id, []).append(redemption)
    out = []
    for request in requests:
        found = by_order.get(request.order_id)
        if not found:
            out.append(request)
            continue
        line_back: dict[int, int] = {}
        order_back = shipping_back = 0
        for redemption in found:
            if redemption.promotion_class == "line":
                for entry in redemption.lines or []:
                    line_back[entry["line_no"]] = line_back.get(entry["line_no"], 0) + int(entry["amount_minor"])
            elif redemption.promotion_class == "order":
                order_back += redemption.amount_minor
            shipping_back += redemption.shipping_minor
        codes = tuple(dict.fromkeys(r.coupon_code for r in found if r.coupon_code))
        out.append(dataclasses.replace(
            request, lines=tuple(dataclasses.replace(line, discount_minor=max(0, line.discount_minor
                                                                                - line_back.get(line.line_no, 0)))
                                 for line in request.lines),
            discount_minor=max(0, request.discount_minor - order_back),
            shipping_fee_minor=request.shipping_fee_minor + shipping_back,
            coupon_codes=tuple(dict.fromkeys((*request.coupon_codes, *codes)))))
    return out


@dataclass
class _Spent:
    """The limits the replay has used up so far."""

    uses: dict[str, int] = field(default_factory=dict)
    given: dict[str, int] = field(default_factory=dict)
    customer_uses: dict[tuple[str, uuid.UUID], int] = field(default_factory=dict)
    coupon_uses: dict[str, int] = field(default_factory=dict)

    def allowances(self, plan: pricing.Plan, customer_id: uuid.UUID) -> dict[str, pure.Allowance]:
        found = {}
        for promotion_id, (total, per_customer, budget) in plan.limits.items():
            found[promotion_id] = pure.Allowance(
                uses_left=None if total is None else total - self.uses.get(promotion_id, 0),
                customer_uses_left=None if per_customer is None
                else per_customer - self.customer_uses.get((promotion_id, customer_id), 0),
                budget_left_minor=None if budget is None else budget - self.given.get(promotion_id, 0))
        return found

    def spend(self, applied: pure.Applied, customer_id: uuid.UUID) -> None:
        self.uses[applied.promotion_id] = self.uses.get(applied.promotion_id, 0) + 1
        self.given[applied.promotion_id] = self.given.get(applied.promotion_id, 0) + applied.amount_minor
        pair = (applied.promotion_id, customer_id)
        self.customer_uses[pair] = self.customer_uses.get(pair, 0) + 1
        if applied.coupon_code:
            self.coupon_uses[applied.coupon_code] = self.coupon_uses.get(applied.coupon_code, 0) + 1


def _coupon_states(codes: tuple[str, ...], coupons: Mapping[str, pricing.Coupon], spent: _Spent,
                   at: datetime) -> dict[str, pure.CouponState]:
    """Codes as they stood when the order came in, their uses counted within the replay."""
    states = {}
    for code in codes:
        coupon = coupons.get(code)
        if coupon is None:
            states[code] = pure.CouponState(code, None, "unknown")
            continue
        state = dataclasses.replace(coupon, uses=spent.coupon_uses.get(code, 0)).state(at)
        states[code] = state
    return states


@dataclass
class _Replay:
    compiled: pure.CompiledPromotions
    plan: pricing.Plan
    carts: list[pure.Cart]
    requests: list[PricingRequest]
    coupons: Mapping[str, pricing.Coupon]
    segments: Mapping[str, str]
    timezone: str

    def run(self, days: int, limit: int) -> ReplayResult:
        spent = _Spent()
        totals: dict[str, int] = {}
        per_promotion = {p.id: PromotionTotal(p.id, p.name) for p in self.compiled.promotions}
        rows = []
        for request, cart in zip(self.requests, self.carts, strict=True):
            moment = Moment(request.placed_at, self.timezone)
            priced = pure.price(self.compiled, cart, moment,
                                coupons=_coupon_states(request.coupon_codes, self.coupons, spent, request.placed_at),
                                allowances=spent.allowances(self.plan, request.customer_id))
            for applied in priced.applied:
                spent.spend(applied, request.customer_id)
                total = per_promotion[applied.promotion_id]
                total.orders += 1
                total.amounts[request.currency] = total.amounts.get(request.currency, 0) + applied.amount_minor
            limits = []
            for verdict in priced.trace:
                if verdict.reason in LIMIT_REASONS:
                    limits.append(f"{verdict.name}: {verdict.message}")
                    total = per_promotion[verdict.promotion_id]
                    total.limit_reached_at = total.limit_reached_at or request.order_number
            if priced.total_discount_minor:
                totals[request.currency] = totals.get(request.currency, 0) + priced.total_discount_minor
            amount = (sum(line.unit_price_minor * line.quantity - line.discount_minor for line in request.lines)
                      - request.discount_minor + request.shipping_fee_minor)
            rows.append(ReplayRow(
                order=request.order_number, placed_at=request.placed_at, currency=request.currency,
                amount_minor=amount, discount_minor=priced.total_discount_minor,
                applied=[(a.name, a.amount_minor) for a in priced.applied],
                amounts={a.promotion_id: a.amount_minor for a in priced.applied},
                trace=_named(priced.trace, self.segments), limits=limits))
        return ReplayResult(days=days, limit=limit, orders=len(rows),
                            discounted=sum(1 for row in rows if row.discount_minor), totals=totals,
                            promotions=list(per_promotion.values()), rows=rows)


async def _customer_facts(session: AsyncSession, principal: Principal, plan: pricing.Plan,
                          requests: list[PricingRequest]) -> dict[uuid.UUID, CustomerFacts]:
    if not plan.customer_facts:
        return {}
    return await customer_segments.facts_of(session, principal.tenant_id, {r.customer_id for r in requests},
                                            timezone=principal.timezone, currency=principal.currency)


async def replay(session: AsyncSession, principal: Principal, *, days: int = 7, limit: int = 1000) -> ReplayResult:
    """The company's orders of the last ``days`` (at most ``limit``, the newest) priced with the
    draft, oldest first: per order its discount, the promotions applied and why the others did
    not; per promotion its orders, its discount and the order where a limit would be reached."""
    _, compiled = await draft_compiled(session, principal)
    plan = pricing.make_plan(compiled)
    requests = await recent_pricing_requests(session, principal.tenant_id, clock.now() - timedelta(days=days), limit)
    if requests and (await settings.get_settings(session, principal.tenant_id)).capture_mode == "apply":
        redemptions = list(await session.scalars(select(Redemption).where(
            Redemption.tenant_id == principal.tenant_id, Redemption.order_id.in_([r.order_id for r in requests]))))
        requests = as_sent(requests, redemptions)
    facts = await _customer_facts(session, principal, plan, requests)
    # pricing's own readers, so that a replay sees segments and codes exactly as capture does
    tests = await pricing.segment_tests_of(session, principal.tenant_id, plan.segments)
    codes = {code for r in requests for code in r.coupon_codes}
    coupons = await pricing.coupons_by_code(session, principal.tenant_id, codes, lock=False)
    carts = []
    for request in requests:
        customer = facts.get(request.customer_id)
        today = Moment(request.placed_at, principal.timezone).date
        carts.append(pricing.cart_of(request, own_discounts=True, facts=customer, customer_id=str(request.customer_id),
                                   segments=pricing.memberships(tests, plan.segments, customer, today)))
    segments = await promotions.segment_names(session, principal.tenant_id)
    job = _Replay(compiled, plan, carts, requests, coupons, segments, principal.timezone)
    started = time.perf_counter()
    result = await anyio.to_thread.run_sync(job.run, days, limit)
    result.seconds = round(time.perf_counter() - started, 3)
    return result
