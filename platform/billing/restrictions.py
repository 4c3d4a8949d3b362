"""What an unpaid account may no longer change, decided by the request's method and path.

``restricted`` and ``intake_refused`` make the company's set-up read-only: settings, rules,
catalog, locations, stock, API keys, webhooks, the team, and marketing (promotions, segments,
coupons, campaigns). The order flow is never stopped by an
unpaid invoice: orders, fulfilments, returns, refunds, goodwill, customer service, tracking events,
the re-sending of stuck work (which carries orders too) and the company's own payment account
(which captures its shoppers' payments). Taking access away (revoking a key or an invitation,
removing a member, turning a coupon code off, cancelling a campaign) stays possible, for
safety, and so does creating an API key: a company that
revokes a leaked intake key must be able to give its shop a new one. Billing itself, signing in and out and Stripe's
webhooks are never refused. ``intake_refused`` also refuses new orders: the API's order intake
and the console's manual order.

The rules are patterns over the paths the app registers; a test walks every registered route so
that a new one is decided, not forgotten.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from core.auth import principal_of
from core.problems import ProblemError

RESTRICTING = ("restricted", "intake_refused")
READS = frozenset({"GET", "HEAD", "OPTIONS"})

# Set-up the company may not change while restricted.
SETUP = re.compile(
    r"^/api/v1/(settings|rule-sets|products|locations|inventory|invitations|members|webhook-endpoints|api-keys"
    r"|segments|coupons|coupon-batches|campaigns)(/|$)"
    r"|^/app/(settings|rules|catalog|locations|inventory|marketing)(/|$)"
)
# Within the set-up's paths: what stays allowed (computes without saving, removes access, serves
# the order flow: its stuck work, the company's payment account).
ALWAYS = re.compile(
    r"^/api/v1/rule-sets/[^/]+/(simulate|replay|validate)$"
    r"|^/app/rules/(simulate|replay)$"
    r"|^/app/settings/stuck-work(/|$)"
    r"|^/app/settings/payments$"
    r"|^/app/settings/api-keys/[^/]+/revoke$"
    r"|^/api/v1/invitations/[^/]+$"
    r"|^/app/settings/team/invitations/[^/]+/revoke$"
    r"|^/app/settings/team/members/[^/]+/remove$"
    r"|^/app/marketing/(promotions/(simulate|replay)|segments/count)$"
    r"|^/(app/marketing|api/v1)/(coupons|coupon-batches|coupons/codes|coupons/batches)/[^/]+/disable$"
    r"|^/(app/marketing|api/v1)/campaigns/[^/]+/cancel$"
)
KEY_CREATION = re.compile(r"^/app/settings/api-keys/?$|^/api/v1/api-keys/?$")  # POST only
INTAKE = re.compile(r"^/api/v1/orders/?$|^/app/orders/new/?$")

SETUP_REFUSED = ("Your account is restricted because an invoice is unpaid: settings, rules, catalog, locations "
                 "and stock are read-only until it is paid (Billing). Orders keep flowing.")
INTAKE_REFUSED = ("New orders are refused because an invoice has stayed unpaid: pay it under Billing and "
                  "orders are taken again at once.")


def refusal(method: str, path: str, standing: str) -> str | None:
    """Why this request is refused with 402 for a company in this standing, or None."""
    if standing not in RESTRICTING or method.upper() in READS:
        return None
    if standing == "intake_refused" and method.upper() == "POST" and INTAKE.match(path):
        return INTAKE_REFUSED
    if method.upper() == "POST" and KEY_CREATION.match(path):
        return None
    if SETUP.match(path) and not ALWAYS.match(path):
        return SETUP_REFUSED
    return None


async def enforce(request: Request[Any, Any, Any]) -> None:
    """The app's ``before_request`` hook: after the route's guards, before its handler reads the
    body. The API answers problem+json, the console its error page."""
    principal = principal_of(request)
    if principal is None:
        return
    reason = refusal(request.method, request.url.path, principal.standing)
    if reason is not None:
        raise ProblemError(status=402, title="Payment required", detail=reason)
