"""The console's home (``/app``), by role, with the getting-started checklist above it until every
step is done (then folded away): the company's live dashboard (KPI cards, charts, operations
lists) for a period; a store associate's location, its figures and its queue; customer service's
tasks and the day's returns. The figures block is fetched again (``/app/dashboard/figures``)
when the live stream (``/app/dashboard/live``) says something changed; each chart's figures
download as CSV."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import ROLES, Principal, requires, signed_in
from core.deps import DEPS
from core.live import Interest, stream
from core.pages import page
from core.problems import ProblemError, not_found
from dashboard import charts, home, periods
from dashboard.checklist import checklist
from orders import figures

LIVE_KINDS = frozenset({"orders", "tasks", "returns", "stock", "work", "feeds"})
FIGURES_SPACING_S = 3.0
# The company's charts are for the roles whose home shows them: a store associate's home is their
# location, customer service's their tasks.
see_charts = requires(*(role for role in ROLES if role not in home.HOMES))

From = Annotated[str, QueryParameter(name="from")]  # "from" is a Python keyword


def _period(principal: Principal, period: str, start: str, end: str) -> tuple[periods.Period, dict[str, str]]:
    """The period asked for, or today's with the problems of the one asked for."""
    today = figures.local_today(principal.timezone)
    try:
        return periods.resolve(period, start, end, today), {}
    except ProblemError as problem:
        return periods.today(today), periods.problem_messages(problem)


async def _figures(db: AsyncSession, principal: Principal, period: periods.Period, location: str) -> dict[str, Any]:
    """What the live block shows for the principal's home, and the query that fetches it again."""
    which = home.home_of(principal)
    if which == "store":
        store = await home.store(db, principal, period, location)
        return {"which": which, "store": store,
                "block_query": {**period.query(), **({"location": store.location} if store.location else {})}}
    if which == "service":
        today = figures.local_today(principal.timezone)
        return {"which": which, "service": await home.service(db, principal, today), "block_query": {}}
    return {"which": which, "company": await home.company(db, principal, period, clock.now()),
            "block_query": period.query()}


class HomeController(Controller):
    path = "/app"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/")
    async def home(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   period: str = "", start: From = "", to: str = "", location: str = "") -> Template:
        chosen, errors = _period(principal, period, start, to)
        steps = await checklist(db, principal) if principal.role != "store_associate" else []
        shown = await _figures(db, principal, chosen, location)
        return page(request, "console/home.html", status_code=422 if errors else 200, steps=steps,
                    done=sum(s.done for s in steps), period=chosen, errors=errors,
                    values={"period": period, "from": start, "to": to}, **shown)

    @get("/dashboard/figures")
    async def figures_block(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            period: str = "", start: From = "", to: str = "", location: str = "") -> Template:
        """The live block alone, for htmx to swap in when the stream says something changed."""
        chosen, errors = _period(principal, period, start, to)
        return page(request, "dashboard/_block.html", status_code=422 if errors else 200, period=chosen,
                    errors=errors, **await _figures(db, principal, chosen, location))

    @get("/dashboard/live")
    async def live(self, principal: Principal) -> ServerSentEvent:
        # The figures cost tens of milliseconds to render: a busy company's open home refreshes at
        # once after a quiet spell, then every few seconds at most, never at every order.
        # A store associate's home is their locations' orders: other kinds carry no location.
        kinds = LIVE_KINDS if principal.locations is None else frozenset({"orders"})
        return stream(principal, Interest(principal.tenant_id, kinds, locations=principal.locations),
                      spacing=FIGURES_SPACING_S)

    @get("/dashboard/charts/{file:str}", guards=[see_charts])
    async def chart_csv(self, db: AsyncSession, principal: Principal, file: str, period: str = "",
                        start: From = "", to: str = "") -> Response[str]:
        """A chart's figures as CSV (``orders.csv``), for the same period as the chart."""
        name, _, extension = file.partition(".")
        if extension != "csv" or name not in home.CHART_NAMES:
            raise not_found("Chart")
        today = figures.local_today(principal.timezone)
        chosen = periods.resolve(period, start, to, today)
        found = await home.chart(home.Source(db, principal, chosen, clock.now()), name)
        download = charts.filename(name, chosen.first.isoformat(), chosen.last.isoformat())
        return Response(charts.csv_text(found), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{download}"',
                                 "Cache-Control": "no-store"})


route_handlers = [HomeController]
