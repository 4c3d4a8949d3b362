"""Promotions at order capture, and carts priced for the API and simulations.

``MarketingPromotions`` is the orders domain's promotion hook (``orders.promotion_hook``),
registered when this module is imported. For a capture batch it reads the company's settings, the
promotions version in force at each order's time, the coupons the orders name and what their
customers' segments need, prices each order in turn against what is left of every limit, and then
writes one UPDATE per kind of counter and the batch's redemptions, all in the capture's
transaction.

Limits are exact under concurrency: the rows that keep them are locked before they are read, in
one fixed order for every transaction that touches them (coupons by code, then promotion counters
by promotion id, then per-customer uses by promotion id and customer), so batches queue on them
and never deadlock; within a batch, orders are priced one after the other against the counts in
memory. Sixteen orders racing for a single-use code give one discount. Only the counters a batch
may spend are locked: those of the limited promotions an order can reach at all (enabled, for its
channel and segments, with its code, conditions met: nothing that depends on what is left of a
limit); the others are priced as spent, so an unlocked counter is never spent.

A company with no promotions version in force, sending no coupon code and no discount of its own,
costs one query per batch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, clock, money
from core.auth import Principal
from core.db import driver
from core.ids import uuid7
from core.locale import format_money
from core.problems import invalid
from core.search_keys import email_key
from customers import segments as customer_segments
from customers import service as customers
from inventory import catalog
from marketing import promotions, settings
from marketing.models import Redemption, Segment
from marketing.schemas import CartIn
from orders import promotion_hook
from orders.promotion_hook import PricingLine, PricingOutcome, PricingRequest
from rules import promotions as pure
from rules.conditions import Context
from rules.facts import LineFacts, Moment, OrderFacts
from rules.fields import CHANNELS
from rules.segments import CustomerFacts, compile_segment

NOTHING = PricingOutcome()
_NONE = pure.compile_document(pure.empty_document())
_CACHE_SIZE = 1024
_SPENT = pure.Allowance(uses_left=0)


# --- what a version needs read -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Plan:
    """What pricing with one compiled version needs beyond the cart."""

    # Enabled limited promotions: id -> (total uses, uses per customer, budget), None = no limit.
    limits: Mapping[str, tuple[int | None, int | None, int | None]]
    segments: frozenset[str]  # segment ids named by enabled promotions
    customer_facts: bool  # conditions test the customer's record (beyond the tags the order carries)
    ids: frozenset[str]


_plans: dict[tuple[uuid.UUID, uuid.UUID], Plan] = {}


def _customer_fields(node: Any) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("field")
            if isinstance(name, str) and name.startswith("customer.") and name != "customer.tags":
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def make_plan(compiled: pure.CompiledPromotions) -> Plan:
    enabled = [p for p in compiled.promotions if p.enabled]
    return Plan(limits={p.id: (p.total_uses, p.per_customer, p.budget) for p in enabled
                        if p.id in compiled.limited_ids},
                segments=frozenset(p.segment for p in enabled if p.segment),
                customer_facts=any(p.segment or _customer_fields(p.when) for p in enabled),
                ids=frozenset(p.id for p in compiled.promotions))


def plan_of(tenant_id: uuid.UUID, version_id: uuid.UUID, compiled: pure.CompiledPromotions) -> Plan:
    """The version's plan, made once (versions never change)."""
    key = (tenant_id, version_id)
    found = _plans.get(key)
    if found is None:
        found = make_plan(compiled)
        if len(_plans) >= _CACHE_SIZE:
            _plans.clear()
        _plans[key] = found
    return found


# Compiled segment conditions by (tenant, segment), with the updated_at they were compiled from.
_segment_tests: dict[tuple[uuid.UUID, str], tuple[datetime, Any]] = {}


async def segment_tests_of(session: AsyncSession, tenant_id: uuid.UUID, ids: Iterable[str]) -> dict[str, Any]:
    """Membership tests of these segments (those that exist), each compiled once per change."""
    wanted = set()
    for segment_id in ids:
        try:
            wanted.add(uuid.UUID(segment_id))
        except ValueError:
            continue
    if not wanted:
        return {}
    rows = await session.execute(select(Segment.id, Segment.updated_at, Segment.condition).where(
        Segment.tenant_id == tenant_id, Segment.id.in_(wanted)))
    tests = {}
    for row in rows:
        key = (tenant_id, str(row.id))
        cached = _segment_tests.get(key)
        if cached is None or cached[0] != row.updated_at:
            if len(_segment_tests) >= _CACHE_SIZE:
                _segment_tests.clear()
            cached = _segment_tests[key] = (row.updated_at, compile_segment(row.condition))
        tests[str(row.id)] = cached[1]
    return tests


def memberships(tests: Mapping[str, Any], wanted: frozenset[str], facts: CustomerFacts | None,
                 today: date) -> frozenset[str]:
    if facts is None or not wanted:
        return frozenset()
    return frozenset(segment_id for segment_id in wanted if segment_id in tests and tests[segment_id](facts, today))


# --- coupons ------------------------------------------------------------------------------------

@dataclass(slots=True)
class Coupon:
    id: uuid.UUID
    code: str
    promotion_id: str
    max_uses: int | None
    uses: int
    starts_at: datetime | None
    expires_at: datetime | None
    disabled_at: datetime | None

    def state(self, at: datetime) -> pure.CouponState:
        problem = None
        if self.disabled_at is not None and self.disabled_at <= at:
            problem = "disabled"
        elif self.starts_at is not None and at < self.starts_at:
            problem = "not_started"
        elif self.expires_at is not None and self.expires_at <= at:
            problem = "expired"
        elif self.max_uses is not None and self.uses >= self.max_uses:
            problem = "exhausted"
        return pure.CouponState(self.code, self.promotion_id, problem, str(self.id))


_COUPONS = ("SELECT id, code, promotion_id, max_uses, uses, starts_at, expires_at, disabled_at FROM coupons "
            "WHERE tenant_id = $1 AND code = ANY($2::text[]) ORDER BY code")


async def coupons_by_code(session: AsyncSession, tenant_id: uuid.UUID, codes: Iterable[str], *,
                   lock: bool) -> dict[str, Coupon]:
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = await (await driver(session)).fetch(_COUPONS + (" FOR UPDATE" if lock else ""), tenant_id, wanted)
    return {row["code"]: Coupon(**dict(row)) for row in rows}


def _states(codes: Sequence[str], coupons: Mapping[str, Coupon], at: datetime) -> dict[str, pure.CouponState]:
    return {code: coupons[code].state(at) if code in coupons else pure.CouponState(code, None, "unknown")
            for code in codes}


# --- counters -----------------------------------------------------------------------------------

_COUNTERS = ("SELECT promotion_id, uses, given_minor FROM promotion_counters WHERE tenant_id = $1 "
             "AND promotion_id = ANY($2::text[]) ORDER BY promotion_id")
_NEW_COUNTERS = ("INSERT INTO promotion_counters (tenant_id, promotion_id) SELECT $1, p "
                 "FROM unnest($2::text[]) AS p ORDER BY p ON CONFLICT DO NOTHING")
_CUSTOMER_USES = ("SELECT u.promotion_id, u.customer_id, u.uses FROM promotion_customer_uses u "
                  "JOIN unnest($2::text[], $3::uuid[]) AS w(promotion_id, customer_id) "
                  "ON w.promotion_id = u.promotion_id AND w.customer_id = u.customer_id "
                  "WHERE u.tenant_id = $1 ORDER BY u.promotion_id, u.customer_id")
_NEW_CUSTOMER_USES = ("INSERT INTO promotion_customer_uses (tenant_id, promotion_id, customer_id) SELECT $1, p, c "
                      "FROM unnest($2::text[], $3::uuid[]) AS w(p, c) ORDER BY p, c ON CONFLICT DO NOTHING")
_ADD_COUPONS = ("UPDATE coupons AS c SET uses = greatest(c.uses + d.uses, 0) FROM unnest($2::uuid[], $3::int[]) "
                "AS d(id, uses) WHERE c.tenant_id = $1 AND c.id = d.id")
_ADD_COUNTERS = ("UPDATE promotion_counters AS c SET uses = greatest(c.uses + d.uses, 0), "
                 "given_minor = greatest(c.given_minor + d.given, 0) "
                 "FROM unnest($2::text[], $3::int[], $4::bigint[]) AS d(promotion_id, uses, given) "
                 "WHERE c.tenant_id = $1 AND c.promotion_id = d.promotion_id")
_ADD_CUSTOMER_USES = ("UPDATE promotion_customer_uses AS c SET uses = greatest(c.uses + d.uses, 0) "
                      "FROM unnest($2::text[], $3::uuid[], $4::int[]) AS d(promotion_id, customer_id, uses) "
                      "WHERE c.tenant_id = $1 AND c.promotion_id = d.promotion_id AND c.customer_id = d.customer_id")
_LOCK_COUPONS = "SELECT 1 FROM coupons WHERE tenant_id = $1 AND id = ANY($2::uuid[]) ORDER BY code FOR UPDATE"


@dataclass
class Counts:
    """What is spent of the limits, as read (and locked) and then as priced in memory."""

    counters: dict[str, list[int]] = field(default_factory=dict)  # promotion -> [uses, given]
    customer_uses: dict[tuple[str, uuid.UUID], int] = field(default_factory=dict)

    async def read(self, session: AsyncSession, tenant_id: uuid.UUID, promotion_ids: set[str],
                   pairs: set[tuple[str, uuid.UUID]], *, lock: bool) -> None:
        """Read (with ``lock``: lock, creating missing rows first) these counters, in key order."""
        connection = await driver(session)
        suffix = " FOR UPDATE" if lock else ""
        if promotion_ids:
            ids = sorted(promotion_ids)
            rows = await connection.fetch(_COUNTERS + suffix, tenant_id, ids)
            missing = sorted(set(ids) - {row["promotion_id"] for row in rows})
            if missing and lock:
                await connection.execute(_NEW_COUNTERS, tenant_id, missing)
                rows = [*rows, *await connection.fetch(_COUNTERS + suffix, tenant_id, missing)]
            self.counters.update({row["promotion_id"]: [row["uses"], row["given_minor"]] for row in rows})
        if pairs:
            keys = sorted(pairs)
            rows = await connection.fetch(_CUSTOMER_USES + suffix, tenant_id, [p for p, _ in keys],
                                          [c for _, c in keys])
            absent = sorted(set(keys) - {(row["promotion_id"], row["customer_id"]) for row in rows})
            if absent and lock:
                await connection.execute(_NEW_CUSTOMER_USES, tenant_id, [p for p, _ in absent],
                                         [c for _, c in absent])
                rows = [*rows, *await connection.fetch(_CUSTOMER_USES + suffix, tenant_id, [p for p, _ in absent],
                                                       [c for _, c in absent])]
            self.customer_uses.update({(row["promotion_id"], row["customer_id"]): row["uses"] for row in rows})

    def allowances(self, plan: Plan, customer_id: uuid.UUID | None,
                   locked: set[str] | None = None) -> dict[str, pure.Allowance]:
        """What is left of each limited promotion's limits. With ``locked``, the counters read
        under lock: a limited promotion not among them was found out of reach, and is given
        nothing, so that it can never be spent unlocked."""
        found = {}
        for promotion_id in plan.limits:
            if locked is not None and promotion_id not in locked:
                found[promotion_id] = _SPENT
                continue
            total, per_customer, budget = plan.limits[promotion_id]
            uses, given = self.counters.get(promotion_id, (0, 0))
            customer_uses = self.customer_uses.get((promotion_id, customer_id), 0) if customer_id else 0
            found[promotion_id] = pure.Allowance(
                uses_left=None if total is None else total - uses,
                customer_uses_left=None if per_customer is None or customer_id is None
                else per_customer - customer_uses,
                budget_left_minor=None if budget is None else budget - given)
        return found


async def _add(session: AsyncSession, tenant_id: uuid.UUID, coupons: Mapping[uuid.UUID, int],
               counters: Mapping[str, list[int]], customer_uses: Mapping[tuple[str, uuid.UUID], int]) -> None:
    """Add these deltas (negative to give back): one statement per kind of counter."""
    connection = await driver(session)
    coupons = {k: v for k, v in coupons.items() if v}
    counters = {k: v for k, v in counters.items() if v[0] or v[1]}
    customer_uses = {k: v for k, v in customer_uses.items() if v}
    if coupons:
        coupon_ids = sorted(coupons)
        await connection.execute(_ADD_COUPONS, tenant_id, coupon_ids, [coupons[i] for i in coupon_ids])
    if counters:
        promotion_ids = sorted(counters)
        await connection.execute(_ADD_COUNTERS, tenant_id, promotion_ids, [counters[i][0] for i in promotion_ids],
                                 [counters[i][1] for i in promotion_ids])
    if customer_uses:
        pairs = sorted(customer_uses)
        await connection.execute(_ADD_CUSTOMER_USES, tenant_id, [p for p, _ in pairs], [c for _, c in pairs],
                                 [customer_uses[pair] for pair in pairs])


# --- carts --------------------------------------------------------------------------------------

def _net(line: PricingLine) -> int:
    return line.unit_price_minor * line.quantity - line.discount_minor


def _facts(request: PricingRequest, orders_count: int) -> OrderFacts:
    lines = tuple(LineFacts(line.sku, line.quantity, line.category, line.unit_price_minor) for line in request.lines)
    total = sum(_net(line) for line in request.lines) - request.discount_minor + request.shipping_fee_minor
    return OrderFacts(lines=lines, reference=request.order_number, channel=request.channel,
                      currency=request.currency, total_minor=total, delivery_mode=request.delivery_mode,
                      country=request.country, postcode=request.postcode, pickup_location=request.pickup_location,
                      customer_tags=frozenset(request.customer_tags), customer_orders_count=orders_count,
                      placed_at=request.placed_at)


def cart_of(request: PricingRequest, *, own_discounts: bool, facts: CustomerFacts | None,
          segments: frozenset[str], customer_id: str | None) -> pure.Cart:
    """The order as promotions see it. Applying promotions, they discount what is left after the
    channel's own discounts (its order discount shared among the lines as capture shares it);
    checking, they work from the full prices, the channel's discounts being what is checked."""
    line_discounts: tuple[int, ...] = ()
    if own_discounts:
        shares = money.apportion(request.discount_minor, [_net(line) for line in request.lines])
        line_discounts = tuple(line.discount_minor + share for line, share in zip(request.lines, shares, strict=True))
    return pure.Cart(_facts(request, facts.orders_count if facts else 0), line_discounts, request.shipping_fee_minor,
                     request.coupon_codes, customer_id, segments)


def _show(minor: int, currency: str, principal: Principal) -> str:
    return format_money(minor, currency, principal.locale)


def _notes(pricing: pure.Pricing | None, states: Iterable[pure.CouponState], currency: str) -> tuple[str, ...]:
    """Words for the order's timeline (every order of a capture has them: plain formatting)."""
    notes = [f"{a.name}: -{money.major(a.amount_minor, currency)} {currency}"
             + (f" (code {a.coupon_code})" if a.coupon_code else "") for a in (pricing.applied if pricing else ())]
    notes += [pure.coupon_message(state) for state in states if state.problem]
    return tuple(notes)


def _redemption_lines(request: PricingRequest, applied: pure.Applied) -> list[dict[str, int]]:
    return [{"line_no": line.line_no, "amount_minor": amount, "quantity": line.quantity}
            for line, amount in zip(request.lines, applied.line_amounts, strict=True) if amount]


def _reachable(compiled: pure.CompiledPromotions, plan: Plan, cart: pure.Cart, moment: Moment,
               codes: Sequence[str], coupons: Mapping[str, Coupon]) -> Iterable[str]:
    """The limited promotions this cart can reach with its limits whole: enabled, for its channel
    and its customer's segments, with one of its codes when it needs one (usable or not), its
    conditions met. What is left of a limit decides nothing here, so these are the counters to
    lock; the others are given nothing when the cart is priced (``Counts.allowances``)."""
    context = Context(cart.facts, moment)
    for p in compiled.promotions:
        if p.id not in plan.limits or not p.enabled or (p.channels and cart.facts.channel not in p.channels) \
                or (p.segment is not None and p.segment not in cart.segments):
            continue
        if p.coupon and not any(code in coupons and coupons[code].promotion_id == p.id for code in codes):
            continue
        if p.test(context):
            yield p.id


# --- the hook -----------------------------------------------------------------------------------

class MarketingPromotions:
    """Promotions at capture, cancellation and return (``orders.promotion_hook.Promotions``)."""

    async def price(self, session: AsyncSession, principal: Principal,
                    requests: list[PricingRequest]) -> list[PricingOutcome]:
        if not requests:
            return []
        tenant_id = principal.tenant_id
        in_force = await promotions.in_force_at(session, tenant_id, [r.placed_at for r in requests])
        codes = {code for r in requests for code in r.coupon_codes}
        own = any(r.discount_minor or any(line.discount_minor for line in r.lines) for r in requests)
        if not codes and not own and all(compiled is None for _, compiled in in_force):
            return [NOTHING] * len(requests)
        config = await settings.get_settings(session, tenant_id)
        mode = config.capture_mode
        if mode == "off" or (mode == "apply" and not codes and all(compiled is None for _, compiled in in_force)):
            return [NOTHING] * len(requests)
        # Customers first (their figures are written after pricing), then coupons, counters and
        # per-customer uses, each in a fixed order: concurrent captures never wait in a cycle.
        await customers.lock(session, tenant_id, {r.customer_id for r in requests})
        coupons = await coupons_by_code(session, tenant_id, codes, lock=True)
        plans = [plan_of(tenant_id, version.id, compiled) if version is not None and compiled is not None else None
                 for version, compiled in in_force]
        facts: dict[uuid.UUID, CustomerFacts] = {}
        if any(plan is not None and plan.customer_facts for plan in plans):
            facts = await customer_segments.facts_of(session, tenant_id, {r.customer_id for r in requests},
                                                     timezone=principal.timezone, currency=principal.currency)
        tests = await segment_tests_of(session, tenant_id, {s for plan in plans if plan for s in plan.segments})
        moments = [Moment(r.placed_at, principal.timezone) for r in requests]
        carts = [cart_of(r, own_discounts=mode == "apply", facts=facts.get(r.customer_id),
                       segments=memberships(tests, plan.segments, facts.get(r.customer_id), moment.date)
                       if plan else frozenset(), customer_id=str(r.customer_id))
                 for r, plan, moment in zip(requests, plans, moments, strict=True)]

        counts = Counts()
        locked = await self._lock(session, tenant_id, requests, in_force, plans, carts, moments, coupons, counts)
        outcomes: list[PricingOutcome] = []
        coupon_uses: dict[uuid.UUID, int] = {}
        counter_uses: dict[str, list[int]] = {}
        customer_uses: dict[tuple[str, uuid.UUID], int] = {}
        now = clock.now()
        for r, (version, compiled), plan, cart, moment in zip(requests, in_force, plans, carts, moments, strict=True):
            states = _states(r.coupon_codes, coupons, r.placed_at)
            pricing = None
            if compiled is not None and plan is not None:
                pricing = pure.price(compiled, cart, moment, coupons=states,
                                     allowances=counts.allowances(plan, r.customer_id, locked), explained=False)
            refusal = self._refusal(r, pricing, states.values(), mode, config.refuse_invalid_coupons, principal)
            if mode == "check" and not (r.discount_minor or any(line.discount_minor for line in r.lines)):
                pricing = None  # the channel gave no discount: no promotion was used, none is spent
            notes = _notes(pricing, states.values(), r.currency)
            if refusal:
                outcomes.append(PricingOutcome(refusal=refusal, notes=notes))
                continue
            for applied in pricing.applied if pricing else ():
                counted, counted_for_customer = self._spend(r, applied, plan, coupons, counts, coupon_uses,
                                                            counter_uses, customer_uses)
                bulk.defer(session, Redemption, {
                    "tenant_id": tenant_id, "id": uuid7(), "order_id": r.order_id, "order_number": r.order_number,
                    "customer_id": r.customer_id, "promotion_id": applied.promotion_id,
                    "promotion_name": applied.name[:200], "promotion_class": applied.klass,
                    "rule_version": version.number if version else None,
                    "coupon_id": uuid.UUID(applied.coupon_id) if applied.coupon_id else None,
                    "coupon_code": applied.coupon_code, "amount_minor": applied.amount_minor,
                    "currency": r.currency, "lines": _redemption_lines(r, applied),
                    "shipping_minor": applied.shipping_minor, "given_back_minor": 0, "use_given_back": False,
                    "counted": counted, "counted_for_customer": counted_for_customer,
                    "created_at": now})
            if pricing is None or mode == "check":
                outcomes.append(PricingOutcome(notes=notes))
            else:
                outcomes.append(PricingOutcome(
                    line_discounts=pricing.line_class_discounts, order_discount_minor=pricing.order_discount_minor,
                    shipping_discount_minor=pricing.shipping_discount_minor, notes=notes))
        await _add(session, tenant_id, coupon_uses, counter_uses, customer_uses)
        return outcomes

    @staticmethod
    async def _lock(session: AsyncSession, tenant_id: uuid.UUID, requests: list[PricingRequest],
                    in_force: Sequence[tuple[Any, pure.CompiledPromotions | None]], plans: list[Plan | None],
                    carts: list[pure.Cart], moments: list[Moment], coupons: Mapping[str, Coupon],
                    counts: Counts) -> set[str]:
        """Lock (and read into ``counts``) the counters the batch may spend: those of the limited
        promotions some order can reach with its limits whole. Returns their ids."""
        promotion_ids: set[str] = set()
        pairs: set[tuple[str, uuid.UUID]] = set()
        for r, (_, compiled), plan, cart, moment in zip(requests, in_force, plans, carts, moments, strict=True):
            if compiled is None or plan is None or not plan.limits:
                continue
            for promotion_id in _reachable(compiled, plan, cart, moment, r.coupon_codes, coupons):
                promotion_ids.add(promotion_id)
                if plan.limits[promotion_id][1] is not None:
                    pairs.add((promotion_id, r.customer_id))
        await counts.read(session, tenant_id, promotion_ids, pairs, lock=True)
        return promotion_ids

    @staticmethod
    def _refusal(request: PricingRequest, pricing: pure.Pricing | None, states: Iterable[pure.CouponState],
                 mode: str, refuse_invalid_coupons: bool, principal: Principal) -> dict[str, str] | None:
        errors = {}
        problems = [pure.coupon_message(state) for state in states if state.problem]
        if problems and refuse_invalid_coupons:
            errors["coupon_codes"] = "; ".join(problems) + "."
        if mode == "check":
            sent = sum(line.discount_minor for line in request.lines) + request.discount_minor
            allowed = pricing.total_discount_minor - pricing.shipping_discount_minor if pricing else 0
            if sent > allowed:
                errors["discount_minor"] = (
                    f"The order's discounts ({_show(sent, request.currency, principal)}) are more than the "
                    f"promotions in force allow ({_show(allowed, request.currency, principal)}).")
        return errors or None

    @staticmethod
    def _spend(request: PricingRequest, applied: pure.Applied, plan: Plan | None, coupons: Mapping[str, Coupon],
               counts: Counts, coupon_uses: dict[uuid.UUID, int], counter_uses: dict[str, list[int]],
               customer_uses: dict[tuple[str, uuid.UUID], int]) -> tuple[bool, bool]:
        """Count one applied promotion in memory: the next orders of the batch see it spent.
        Whether it was charged to the promotion's counter and to the customer's uses."""
        if applied.coupon_code and applied.coupon_code in coupons:
            coupon = coupons[applied.coupon_code]
            coupon.uses += 1
            coupon_uses[coupon.id] = coupon_uses.get(coupon.id, 0) + 1
        if plan is None or applied.promotion_id not in counts.counters:
            return False, False
        spent = counts.counters[applied.promotion_id]
        spent[0] += 1
        spent[1] += applied.amount_minor
        delta = counter_uses.setdefault(applied.promotion_id, [0, 0])
        delta[0] += 1
        delta[1] += applied.amount_minor
        pair = (applied.promotion_id, request.customer_id)
        if pair not in counts.customer_uses:
            return True, False
        counts.customer_uses[pair] += 1
        customer_uses[pair] = customer_uses.get(pair, 0) + 1
        return True, True

    async def release(self, session: AsyncSession, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]) -> None:
        """Undo ``price`` for orders not stored after all: what they spent comes back and their
        redemptions go."""
        redemptions = await _redemptions_for_update(session, tenant_id, order_ids)
        if not redemptions:
            return
        for row in redemptions:
            row.give_back_all()
        await _return(session, tenant_id, redemptions, uses=True)
        await (await driver(session)).execute("DELETE FROM redemptions WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
                                              tenant_id, [row.id for row in redemptions])

    async def give_back(self, session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID, *,
                        units: dict[int, int], whole: bool) -> None:
        """The share of each redemption on the units cancelled or returned now goes back to the
        budget (line amount * units / line quantity, counted cumulatively, so the last unit brings
        back what rounding kept); with ``whole``, everything left and the use too."""
        redemptions = await _redemptions_for_update(session, tenant_id, [order_id])
        if not redemptions:
            return
        changed = [row for row in redemptions if row.give_back(units, whole)]
        if changed:
            await _return(session, tenant_id, changed, uses=whole)
            await (await driver(session)).execute(
                "UPDATE redemptions AS r SET lines = d.lines::jsonb, given_back_minor = d.back, "
                "use_given_back = d.whole FROM unnest($2::uuid[], $3::text[], $4::bigint[], $5::bool[]) "
                "AS d(id, lines, back, whole) WHERE r.tenant_id = $1 AND r.id = d.id",
                tenant_id, [row.id for row in changed], [json.dumps(row.lines) for row in changed],
                [row.given_back_minor for row in changed], [row.use_given_back for row in changed])


@dataclass
class _Held:
    """A redemption being given back: its figures before and after."""

    id: uuid.UUID
    promotion_id: str
    customer_id: uuid.UUID | None
    coupon_id: uuid.UUID | None
    amount_minor: int
    lines: list[dict[str, int]]
    shipping_minor: int
    given_back_minor: int
    use_given_back: bool
    counted: bool
    counted_for_customer: bool
    back_now: int = 0  # money given back by this call
    use_back_now: bool = False

    def give_back(self, units: Mapping[int, int], whole: bool) -> bool:
        """Give back the share of these units (all that is left with ``whole``); whether anything changed."""
        back = 0
        for entry in self.lines:
            quantity = max(entry.get("quantity", 1), 1)
            done = entry.get("units_back", 0)
            now = quantity if whole else min(quantity, done + max(units.get(entry["line_no"], 0), 0))
            if now == done:
                continue
            share = entry["amount_minor"] * now // quantity
            back += share - entry.get("back_minor", 0)
            entry["units_back"], entry["back_minor"] = now, share
        if whole and not self.use_given_back:
            back += self.shipping_minor
            self.use_given_back = self.use_back_now = True
        back = min(back, self.amount_minor - self.given_back_minor)
        self.back_now = back
        self.given_back_minor += back
        return back > 0 or self.use_back_now

    def give_back_all(self) -> None:
        self.back_now = self.amount_minor - self.given_back_minor
        self.given_back_minor = self.amount_minor
        self.use_back_now = not self.use_given_back
        self.use_given_back = True


async def _redemptions_for_update(session: AsyncSession, tenant_id: uuid.UUID,
                                  order_ids: list[uuid.UUID]) -> list[_Held]:
    if not order_ids:
        return []
    rows = await (await driver(session)).fetch(
        "SELECT id, promotion_id, customer_id, coupon_id, amount_minor, lines, shipping_minor, given_back_minor, "
        "use_given_back, counted, counted_for_customer FROM redemptions "
        "WHERE tenant_id = $1 AND order_id = ANY($2::uuid[]) ORDER BY id FOR UPDATE",
        tenant_id, order_ids)
    return [_Held(**{**dict(row), "lines": json.loads(row["lines"]) if isinstance(row["lines"], str)
                     else list(row["lines"] or [])}) for row in rows]


async def _return(session: AsyncSession, tenant_id: uuid.UUID, held: list[_Held], *, uses: bool) -> None:
    """Give back to the counters what these redemptions returned just now, locking the rows in the
    order captures lock them (coupons, promotions, customers)."""
    coupons: dict[uuid.UUID, int] = {}
    counters: dict[str, list[int]] = {}
    customer_uses: dict[tuple[str, uuid.UUID], int] = {}
    for row in held:  # only what each redemption was charged to comes back
        if row.counted:
            delta = counters.setdefault(row.promotion_id, [0, 0])
            delta[1] -= row.back_now
        if uses and row.use_back_now:
            if row.counted:
                delta[0] -= 1
            if row.coupon_id is not None:
                coupons[row.coupon_id] = coupons.get(row.coupon_id, 0) - 1
            if row.customer_id is not None and row.counted_for_customer:
                pair = (row.promotion_id, row.customer_id)
                customer_uses[pair] = customer_uses.get(pair, 0) - 1
    connection = await driver(session)
    if len(coupons) > 1:
        await connection.fetch(_LOCK_COUPONS, tenant_id, list(coupons))
    if len([c for c in counters.values() if c[0] or c[1]]) > 1:
        await connection.fetch(_COUNTERS + " FOR UPDATE", tenant_id, sorted(counters))
    if len(customer_uses) > 1:
        pairs = sorted(customer_uses)
        await connection.fetch(_CUSTOMER_USES + " FOR UPDATE", tenant_id, [p for p, _ in pairs],
                               [c for _, c in pairs])
    await _add(session, tenant_id, coupons, counters, customer_uses)


promotion_hook.register(MarketingPromotions())


# --- pricing a cart (the API, simulations) -------------------------------------------------------

@dataclass(frozen=True)
class Quote:
    """A cart priced: the pricing with what the answer shows around it."""

    pricing: pure.Pricing
    version: int | None
    at: datetime
    request: PricingRequest
    promotion_ids: frozenset[str]  # of the version used


async def _customer(session: AsyncSession, tenant_id: uuid.UUID, email: str) -> customers.CustomerRef | None:
    """The company's customer with this email, if any (nothing is created)."""
    wanted = email.strip().lower()
    found = await customers.search(session, tenant_id, [[email_key(wanted)]], limit=5)
    return next((ref for ref in found if ref.email == wanted), None)


async def quote(session: AsyncSession, principal: Principal, cart: CartIn, *, at: datetime | None = None,
                compiled: pure.CompiledPromotions | None = None, version: int | None = None) -> Quote:
    """Price a cart with the version in force at ``at`` (default: the cart's placed_at, else now),
    or with ``compiled`` (a draft, say). Consumes nothing. Refused (422) with every problem: an
    unknown SKU, a channel the caller may not use, a line discount beyond the line."""
    tenant_id = principal.tenant_id
    errors: dict[str, str] = {}
    if cart.channel not in CHANNELS:
        errors["channel"] = f"Unknown channel {cart.channel!r}: use one of {', '.join(CHANNELS)}."
    elif principal.channel is not None and cart.channel != principal.channel:
        errors["channel"] = f"This API key prices {principal.channel} carts only."
    products = await catalog.product_refs(session, tenant_id, {line.sku for line in cart.lines})
    for i, line in enumerate(cart.lines):
        if line.sku not in products:
            errors[f"lines[{i}].sku"] = f"Line {i + 1}: unknown SKU {line.sku!r}."
        if line.discount_minor > line.unit_price_minor * line.quantity:
            errors[f"lines[{i}].discount_minor"] = f"Line {i + 1}: the discount is more than the line's amount."
    for i, code in enumerate(cart.coupon_codes):
        if not code.strip():
            errors[f"coupon_codes[{i}]"] = f"Coupon code {i + 1} is blank: leave it out or give the code."
    if errors:
        raise invalid(errors, detail=f"The cart can't be priced: {len(errors)} problem"
                                     f"{'s' if len(errors) > 1 else ''}. " + next(iter(errors.values())))
    moment_at = at or cart.placed_at or clock.now()
    if moment_at.tzinfo is None:  # a time without offset is the company's
        moment_at = moment_at.replace(tzinfo=ZoneInfo(principal.timezone))
    ref = await _customer(session, tenant_id, cart.customer.email) if cart.customer else None
    delivery = cart.delivery
    request = PricingRequest(
        order_id=uuid.UUID(int=0), order_number="cart", customer_id=ref.id if ref else uuid.UUID(int=0),
        channel=cart.channel, currency=principal.currency,
        lines=tuple(PricingLine(n, line.sku, products[line.sku].category, line.quantity, line.unit_price_minor,
                                line.discount_minor) for n, line in enumerate(cart.lines, 1)),
        shipping_fee_minor=cart.shipping_fee_minor, discount_minor=0,
        coupon_codes=tuple(dict.fromkeys(code.strip().upper() for code in cart.coupon_codes)),
        delivery_mode=delivery.mode if delivery else "ship",
        country=delivery.country.upper() if delivery and delivery.country else None,
        postcode=delivery.postcode if delivery else None,
        pickup_location=delivery.pickup_location if delivery else None,
        customer_tags=tuple(ref.tags or ()) if ref else (), placed_at=moment_at)
    number = version
    plan: Plan
    if compiled is None:
        found, compiled = await promotions.in_force(session, tenant_id, moment_at)
        number = found.number if found is not None else None
        if found is None or compiled is None:
            compiled = _NONE
            plan = make_plan(compiled)
        else:
            plan = plan_of(tenant_id, found.id, compiled)
    else:
        plan = make_plan(compiled)
    moment = Moment(moment_at, principal.timezone)
    facts = None
    if ref is not None and plan.customer_facts:
        facts = (await customer_segments.facts_of(session, tenant_id, [ref.id], timezone=principal.timezone,
                                                  currency=principal.currency)).get(ref.id)
    tests = await segment_tests_of(session, tenant_id, plan.segments)
    coupons = await coupons_by_code(session, tenant_id, request.coupon_codes, lock=False)
    counts = Counts()
    if plan.limits:
        per_customer = {pid for pid, (_, per, _) in plan.limits.items() if per is not None}
        await counts.read(session, tenant_id, set(plan.limits),
                          {(pid, ref.id) for pid in per_customer} if ref else set(), lock=False)
    priced = pure.price(
        compiled, cart_of(request, own_discounts=True, facts=facts,
                        segments=memberships(tests, plan.segments, facts, moment.date),
                        customer_id=str(ref.id) if ref else None),
        moment, coupons=_states(request.coupon_codes, coupons, moment_at),
        allowances=counts.allowances(plan, ref.id if ref else None))
    return Quote(priced, number, moment_at, request, plan.ids)


async def price_cart(session: AsyncSession, principal: Principal, cart: CartIn, *,
                     at: datetime | None = None) -> pure.Pricing:
    """The cart's discounts under the promotions in force (see ``quote``); consumes nothing."""
    return (await quote(session, principal, cart, at=at)).pricing


async def redemptions_of(session: AsyncSession, tenant_id: uuid.UUID, *, coupon_id: uuid.UUID | None = None,
                         coupon_code: str | None = None, customer_id: uuid.UUID | None = None,
                         order_id: uuid.UUID | None = None, promotion_id: str | None = None,
                         limit: int = 100) -> list[Redemption]:
    """Redemptions, newest first, filtered by what is given."""
    stmt = select(Redemption).where(Redemption.tenant_id == tenant_id)
    if coupon_id is not None:
        stmt = stmt.where(Redemption.coupon_id == coupon_id)
    if coupon_code is not None:
        stmt = stmt.where(Redemption.coupon_code == coupon_code.strip().upper())
    if customer_id is not None:
        stmt = stmt.where(Redemption.customer_id == customer_id)
    if order_id is not None:
        stmt = stmt.where(Redemption.order_id == order_id)
    if promotion_id is not None:
        stmt = stmt.where(Redemption.promotion_id == promotion_id)
    return list(await session.scalars(stmt.order_by(Redemption.created_at.desc(), Redemption.id.desc())
                                      .limit(max(1, min(limit, 1000)))))
