"""Public pages (landing, sign-up, sign-in, password reset, invitations; billing serves pricing), switching
company, and Settings → Team, API keys, Audit log and Webhooks."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation as v
from core import webhooks
from core.auth import Principal, admins_only, role_choices, signed_in
from core.deps import DEPS, provide_db
from core.forms import convert, html_attributes
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect, safe_next
from core.problems import ProblemError, invalid
from core.sessions import (
    create_session,
    destroy_session,
    hand_over_once,
    session_cookie,
    session_token,
    switch_tenant,
    take_once,
)
from core.throttle import clear_failures, network_of, take_attempt, within_rate
from tenants import service
from tenants import webhooks as webhook_endpoints
from tenants.auth import forget_api_keys
from tenants.directory import Directory
from tenants.models import Role
from tenants.schemas import EndpointIn

NOTICES.update(
    {
        "invited": "Invitation sent. It is in the outgoing mail log too.",
        "invitation_revoked": "Invitation withdrawn.",
        "role_changed": "Role updated.",
        "member_removed": "Member removed.",
        "key_revoked": "API key revoked: requests with it are now refused.",
        "key_created": "API key created.",
        "password_reset": "Password changed. Log in with your new password.",
        "signed_out": "You are signed out.",
        "switched": "Switched company.",
    }
)

NOTICES.update({"endpoint_added": "Endpoint added: events are sent to it from now on.",
                "endpoint_disabled": "Endpoint disabled: nothing more is sent to it."})



DB = {"db": Provide(provide_db)}
ENDPOINT_RULES = html_attributes(EndpointIn)  # the browser checks what the server checks
SIGNUPS_PER_ADDRESS = 5  # attempts an hour, failed ones included
SIGNUPS_PER_NETWORK = 20


def _too_many(wait: int) -> str:
    minutes = max(1, (wait + 59) // 60)
    return (f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}, "
            "or reset your password.")


def _signup_choices() -> dict[str, Any]:
    return {"countries": v.countries(), "currencies": v.currencies(), "timezones": v.timezones(),
            "country_currencies": v.country_currencies()}


class PublicController(Controller):
    """Landing, sign-up, sign-in and the links that arrive by mail."""

    include_in_schema = False
    dependencies = DB

    @get("/")
    async def landing(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "public/landing.html")

    @get("/signup")
    async def signup_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "public/signup.html", **_signup_choices())

    @post("/signup")
    async def signup(self, request: Request[Any, Any, Any], db: AsyncSession) -> Template | Redirect:
        data = await form_data(request)
        form = service.SignupForm(**{f: data.get(f, "") for f in service.SignupForm.__dataclass_fields__})
        # Every company costs storage and background work: sign-ups are throttled per address and
        # per network, generously enough for a person correcting a form.
        network = network_of(client_ip(request))
        if not (await within_rate(f"signup:{form.email.strip().lower()}", SIGNUPS_PER_ADDRESS, 3600)
                and (network is None or await within_rate(f"signup-net:{network}", SIGNUPS_PER_NETWORK, 3600))):
            values = {k: val for k, val in data.items() if k != "password"}
            return page(request, "public/signup.html", status_code=429, values=values, **_signup_choices(),
                        errors={"__all__": "Too many sign-ups from here in the last hour. Try again later, or "
                                           "write to us if your team needs several companies."})
        try:
            tenant, user = await service.signup(db, form, ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            values = {k: val for k, val in data.items() if k != "password"}
            return page(request, "public/signup.html", status_code=problem.status, errors=form_errors(problem),
                        values=values, **_signup_choices())
        await db.commit()
        token = await create_session(user.id, tenant.id)
        return redirect("/app", cookies=[session_cookie(request, token)])

    @get("/login")
    async def login_form(self, request: Request[Any, Any, Any], next: str | None = None) -> Template:
        return page(request, "public/login.html", next=safe_next(next))

    @post("/login")
    async def login(self, request: Request[Any, Any, Any], db: AsyncSession) -> Template | Redirect:
        data = await form_data(request)
        email, password = data.get("email", "").strip().lower(), data.get("password", "")
        next_url = safe_next(data.get("next"))
        ip = client_ip(request)
        if wait := await take_attempt(email, ip or "unknown"):
            return page(request, "public/login.html", status_code=429, next=next_url, values={"email": email},
                        errors={"__all__": _too_many(wait)})
        result = await service.authenticate(db, email, password, ip=ip)
        if result is None:
            await db.commit()  # keep the failed-sign-in audit entries
            return page(request, "public/login.html", status_code=401, next=next_url, values={"email": email},
                        errors={"__all__": "Wrong email or password."})
        user, membership = result
        await db.commit()
        await clear_failures(email, ip or "unknown")
        if old := session_token(request):
            await destroy_session(old)
        token = await create_session(user.id, membership.tenant_id)
        return redirect(next_url, cookies=[session_cookie(request, token)])

    @post("/logout")
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        if token := session_token(request):
            await destroy_session(token)
        return redirect("/login", cookies=[session_cookie(request, None)], done="signed_out")

    @get("/forgot-password")
    async def forgot_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "public/forgot_password.html")

    @post("/forgot-password")
    async def forgot(self, request: Request[Any, Any, Any], db: AsyncSession) -> Template:
        data = await form_data(request)
        address = data.get("email", "").strip().lower()
        if not (await within_rate(f"reset:{address}", 3, 3600)
                and await within_rate(f"reset-ip:{client_ip(request)}", 20, 3600)):
            # Same answer as a sent link: the page never tells whether an account exists.
            return page(request, "public/forgot_password.html", sent=True)
        try:
            await service.request_password_reset(db, data.get("email", ""), ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            return page(request, "public/forgot_password.html", status_code=problem.status,
                        errors=form_errors(problem), values=data)
        return page(request, "public/forgot_password.html", sent=True)

    @get("/reset-password/{token:str}")
    async def reset_form(self, request: Request[Any, Any, Any], db: AsyncSession, token: str) -> Template:
        _, user = await service.open_password_reset(db, token)
        return page(request, "public/reset_password.html", token=token, email=user.email)

    @post("/reset-password/{token:str}")
    async def reset(self, request: Request[Any, Any, Any], db: AsyncSession, token: str) -> Template | Redirect:
        data = await form_data(request)
        try:
            user = await service.reset_password(db, token, data.get("password", ""), ip=client_ip(request))
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            _, user = await service.open_password_reset(db, token)
            return page(request, "public/reset_password.html", status_code=problem.status, token=token,
                        email=user.email, errors=form_errors(problem))
        await db.commit()
        from core.sessions import destroy_user_sessions

        await destroy_user_sessions(user.id)
        await clear_failures(user.email)
        return redirect("/login", cookies=[session_cookie(request, None)], done="password_reset")

    @get("/invitations/{token:str}")
    async def invitation(self, request: Request[Any, Any, Any], db: AsyncSession, token: str) -> Template:
        pending = await service.open_invitation(db, token)
        return page(request, "public/accept_invitation.html", token=token, invitation=pending.invitation,
                    tenant=pending.tenant, existing=pending.existing_user is not None,
                    role_label=Role(pending.invitation.role).label)

    @post("/invitations/{token:str}")
    async def accept(self, request: Request[Any, Any, Any], db: AsyncSession, token: str) -> Template | Redirect:
        data = await form_data(request)
        pending = await service.open_invitation(db, token)
        # Accepting for an existing account proves the password: throttled like sign-in.
        if pending.existing_user is not None and (
            wait := await take_attempt(pending.invitation.email, client_ip(request) or "unknown")
        ):
            raise ProblemError(429, "Too many attempts", _too_many(wait))
        try:
            user, membership = await service.accept_invitation(
                db, token, name=data.get("name", ""), password=data.get("password", ""), ip=client_ip(request)
            )
        except ProblemError as problem:
            if not problem.errors:
                raise
            if pending.existing_user is not None and "password" in form_errors(problem):
                await db.commit()  # nothing but the failed-sign-in audit entries was written
            else:
                await db.rollback()
            pending = await service.open_invitation(db, token)
            return page(request, "public/accept_invitation.html", status_code=problem.status, token=token,
                        invitation=pending.invitation, tenant=pending.tenant,
                        existing=pending.existing_user is not None, role_label=Role(pending.invitation.role).label,
                        errors=form_errors(problem), values={"name": data.get("name", "")})
        await db.commit()
        await clear_failures(user.email)
        if old := session_token(request):
            await destroy_session(old)
        session = await create_session(user.id, membership.tenant_id)
        return redirect("/app", cookies=[session_cookie(request, session)])


class ConsoleController(Controller):
    path = "/app"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/companies")
    async def companies(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        assert principal.user_id is not None
        memberships = await service.memberships_of(db, principal.user_id)
        return page(request, "console/companies.html", memberships=memberships)

    @post("/companies/{tenant_id:uuid}/switch")
    async def switch(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     tenant_id: uuid.UUID) -> Redirect:
        assert principal.user_id is not None
        memberships = await service.memberships_of(db, principal.user_id)
        if tenant_id not in {m.tenant_id for m, _ in memberships}:
            raise ProblemError(404, "Not found", "Company not found.")
        token = session_token(request)
        assert token is not None
        await switch_tenant(token, tenant_id)
        return redirect("/app", done="switched")


class SettingsController(Controller):
    """Team, API keys and the audit log: owners and admins only."""

    path = "/app/settings"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def index(self) -> Redirect:
        return redirect("/app/settings/team")

    async def _team_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         directory: Directory, *, status_code: int = 200, errors: dict[str, str] | None = None,
                         values: dict[str, Any] | None = None) -> Template:
        return page(
            request, "settings/team.html", status_code=status_code, errors=errors or {}, values=values or {},
            members=await service.list_members(db, principal),
            invitations=await service.list_invitations(db, principal),
            roles=[(r, Role(r).label) for r in role_choices(principal.role)],
            locations=await directory.locations(db, principal.tenant_id),
        )

    @get("/team")
    async def team(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   directory: Directory) -> Template:
        return await self._team_page(request, db, principal, directory)

    @post("/team/invitations")
    async def invite(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     directory: Directory) -> Template | Redirect:
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str) and k != "_csrf_token"}
        chosen = [v for v in form.getall("locations", []) if isinstance(v, str)]
        known = [code for code, _ in await directory.locations(db, principal.tenant_id)]
        try:
            await service.invite(db, principal, email=data.get("email", ""), role=data.get("role", ""),
                                 locations=chosen, known_locations=known, ip=client_ip(request))
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            return await self._team_page(request, db, principal, directory, status_code=problem.status,
                                         errors=form_errors(problem), values={**data, "locations": chosen})
        return redirect("/app/settings/team", done="invited")

    @post("/team/invitations/{invitation_id:uuid}/revoke")
    async def revoke_invitation(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                                invitation_id: uuid.UUID) -> Redirect:
        await service.revoke_invitation(db, principal, invitation_id, ip=client_ip(request))
        return redirect("/app/settings/team", done="invitation_revoked")

    @post("/team/members/{member_id:uuid}/role")
    async def change_role(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          member_id: uuid.UUID, directory: Directory) -> Template | Redirect:
        form = await request.form()
        role = str(form.get("role") or "")
        chosen = [v for v in form.getall("locations", []) if isinstance(v, str)]
        known = [code for code, _ in await directory.locations(db, principal.tenant_id)]
        try:
            await service.change_role(db, principal, member_id, role,
                                      locations=chosen if form.get("locations_present") else None,
                                      known_locations=known, ip=client_ip(request))
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            return await self._team_page(request, db, principal, directory, status_code=problem.status,
                                         errors=form_errors(problem))
        return redirect("/app/settings/team", done="role_changed")

    @post("/team/members/{member_id:uuid}/remove")
    async def remove_member(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            member_id: uuid.UUID) -> Redirect:
        await service.remove_member(db, principal, member_id, ip=client_ip(request))
        return redirect("/app/settings/team", done="member_removed")

    @get("/api-keys")
    async def api_keys(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       directory: Directory) -> Template:
        # A key just created is handed over once, through Redis, so the page that shows it is
        # a GET (reloading it neither shows the key again nor creates another one).
        revealed = await take_once(principal, "new_api_key")
        response = page(request, "settings/api_keys.html", keys=await service.list_api_keys(db, principal),
                        key_roles=service.KEY_ROLES, channels=directory.channels(),
                        new_key_name=revealed.get("name") if revealed else None,
                        new_token=revealed.get("token") if revealed else None)
        response.headers["Cache-Control"] = "no-store"
        return response

    @post("/api-keys")
    async def create_api_key(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             directory: Directory) -> Template | Redirect:
        data = await form_data(request)
        try:
            key, token = await service.create_api_key(
                db, principal, name=data.get("name", ""), role=data.get("role") or "admin",
                channel=data.get("channel") or None, channels=directory.channels(), ip=client_ip(request))
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            return page(request, "settings/api_keys.html", status_code=problem.status,
                        keys=await service.list_api_keys(db, principal), errors=form_errors(problem), values=data,
                        key_roles=service.KEY_ROLES, channels=directory.channels())
        await db.commit()
        await hand_over_once(principal, "new_api_key", {"name": key.name, "token": token})
        return redirect("/app/settings/api-keys", done="key_created")

    @post("/api-keys/{key_id:uuid}/revoke")
    async def revoke_api_key(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             key_id: uuid.UUID) -> Redirect:
        await service.revoke_api_key(db, principal, key_id, ip=client_ip(request))
        await db.commit()
        forget_api_keys(principal.tenant_id)  # after the commit, so no request caches it again
        return redirect("/app/settings/api-keys", done="key_revoked")

    @get("/audit-log")
    async def audit_log(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        return page(request, "settings/audit_log.html", events=await service.audit_events(db, principal))


class WebhooksPagesController(Controller):
    path = "/app/settings/webhooks"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    async def _page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                    status_code: int = 200, **context: Any) -> Template:
        endpoints = await webhook_endpoints.endpoints(db, principal)
        return page(request, "settings/webhooks.html", status_code=status_code, endpoints=endpoints,
                    events=webhooks.EVENTS, deliveries=await webhook_endpoints.deliveries(db, principal),
                    urls={e.id: e.url for e in endpoints}, rules=ENDPOINT_RULES, **context)

    @get("/")
    async def webhooks_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        return await self._page(request, db, principal)

    @post("/")
    async def add(self, request: Request[Any, Any, Any], db: AsyncSession,
                  principal: Principal) -> Template | Redirect:
        form = await request.form()
        url, description = str(form.get("url") or "").strip(), str(form.get("description") or "").strip()
        raw: dict[str, Any] = {"url": url, "description": description,
                               "events": [e for e in form.getall("events", []) if isinstance(e, str)]}
        try:
            try:
                data = convert(raw, EndpointIn)
            except ProblemError as problem:  # the address is checked too, so that all is told at once
                errors = form_errors(problem)
                if "url" not in errors and (url_problem := await webhooks.check_url(url)):
                    errors["url"] = url_problem
                raise invalid(errors) from None
            await webhook_endpoints.add_endpoint(db, principal, data)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await self._page(request, db, principal, status_code=422, errors=form_errors(problem),
                                    values=raw)
        return redirect("/app/settings/webhooks", done="endpoint_added")

    @post("/{endpoint_id:uuid}/disable")
    async def disable(self, db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> Redirect:
        endpoint = await webhook_endpoints.endpoint(db, principal, endpoint_id)
        endpoint.active = False
        return redirect("/app/settings/webhooks", done="endpoint_disabled")


route_handlers = [PublicController, ConsoleController, SettingsController, WebhooksPagesController]
