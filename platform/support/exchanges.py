"""Exchanges: a return of some units, and a replacement that goes out instead as a new order
linked to the original (``orders.exchanges``). What the returned units are worth (their share
of the lines' nets; no restocking fee) pays for the replacement; the customer pays what it
costs on top, or gets the difference back on the original's refund ledger (source "exchange")
when the goods come back. Shipped at once, the replacement's return is expected within the
return window, and a "return not received" task opens if it does not come."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.locale import format_money as money
from core.problems import ProblemError, invalid
from orders import aftersales, exchanges
from support import returns
from support.models import Return
from support.return_schemas import ExchangeIn, ExchangeOut, ReturnIn
from tenants import service as tenants


@dataclass(frozen=True)
class Quote:
    """What an exchange would do, before it is made."""

    plan: returns.Plan
    replacement: list[exchanges.Replacement]
    returned_value: int
    replacement_total: int

    @property
    def difference(self) -> int:
        """Above 0: the customer pays it; below 0: refunded when the goods come back."""
        return self.replacement_total - self.returned_value


def _return_part(order_id: uuid.UUID, data: ExchangeIn) -> ReturnIn:
    return ReturnIn(order_id=order_id, lines=data.lines, method=data.method, location=data.location,
                    note=data.note, override_window=data.override_window)


async def quote(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: ExchangeIn) -> Quote:
    """Check the exchange (the original's row locked), or refuse with every problem named."""
    errors: dict[str, str] = {}
    try:
        plan = await returns.plan(session, principal, _return_part(order_id, data))
    except ProblemError as problem:
        if problem.status != 422:
            raise
        errors |= {e.field: e.message for e in problem.errors}
        plan = None
    replacement, problems = await exchanges.priced(session, principal,
                                                   [(line.sku, line.quantity) for line in data.replacement])
    errors |= problems
    if plan is None or errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    values = await aftersales.unit_values(session, plan.sale.order,
                                          {line_id: units for line_id, (units, _) in plan.units.items()})
    found = Quote(plan, replacement, sum(values.values()),
                  sum(line.unit_price_minor * line.quantity for line in replacement))
    if found.difference > 0 and not data.charge_difference:
        currency = plan.sale.order.currency
        raise invalid({"charge_difference": (
            f"The replacement costs {money(found.replacement_total, currency)}, "
            f"{money(found.difference, currency)} more than what comes back: confirm the customer pays the "
            "difference.")})
    return found


async def start(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: ExchangeIn) -> ExchangeOut:
    found = await quote(session, principal, order_id, data)
    original = found.plan.sale.order
    made = await returns.open_return(session, principal, _return_part(order_id, data))
    count = int(await session.scalar(select(func.count()).select_from(Return).where(
        Return.tenant_id == principal.tenant_id, Return.order_id == original.id,
        Return.exchange_order_id.is_not(None))) or 0)
    credit = min(found.replacement_total, found.returned_value)
    replacement = await exchanges.place(
        session, principal, original, found.replacement, credit=credit, paid_on_top=max(found.difference, 0),
        reference=f"{original.external_number or original.number}-X{count + 1}", ship_now=data.ship_now)
    row = made.row
    row.exchange_order_id, row.exchange_credit_minor = replacement.id, credit
    if data.ship_now:
        row.expected_by = clock.now() + timedelta(days=max(found.plan.policy.window_days, 1))
    await tenants.audit(session, principal.tenant_id, tenants.Actor.of(principal), "exchange.started",
                        target=f"return {row.number}", order=original.number, replacement=replacement.number,
                        returned_value_minor=found.returned_value, replacement_total_minor=found.replacement_total,
                        ship_now=data.ship_now)
    return ExchangeOut(return_=returns.out(made), replacement_order_id=replacement.id,
                       replacement_order_number=replacement.number, returned_value_minor=found.returned_value,
                       replacement_total_minor=found.replacement_total, difference_minor=found.difference)
