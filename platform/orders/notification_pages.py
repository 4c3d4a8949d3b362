"""Settings → Notifications: the company's default language and brand colour, and for each mail
its customers get, in each language, its own subject and introduction, with a preview and a test
sent to the signed-in person. Owners and admins only."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, admins_only
from core.deps import DEPS
from core.locale import LANGUAGES
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.problems import ProblemError, invalid
from orders import mail_texts, notifications
from tenants import service as tenants

NOTICES.update({
    "mail_look_saved": "Saved: mails use this language and colour from now on.",
    "mail_text_saved": "Saved: the next mails of this kind use your text.",
    "mail_text_reset": "Back to the default text.",
})

BASE = "/app/settings/notifications"


class NotificationSettingsPagesController(Controller):
    path = BASE
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    async def _page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, kind: str,
                    language: str, *, status_code: int = 200, values: dict[str, str] | None = None,
                    errors: dict[str, str] | None = None, look: dict[str, str] | None = None,
                    **context: Any) -> Template:
        tenant = await tenants.get_tenant(db, principal)
        texts = await mail_texts.company_texts(db, principal.tenant_id)
        if values is None:
            subject, intro = texts.get((kind, language)) or mail_texts.default_texts(kind, language)
            values = {"subject": subject, "intro": intro}
        template = "settings/_notification_preview.html" if context.get("partial") else "settings/notifications.html"
        return page(
            request, template, status_code=status_code, errors=errors or {}, values=values,
            look=look or {"language": tenant.language, "brand_colour": tenant.brand_colour},
            kinds=mail_texts.KINDS, languages=LANGUAGES, kind=mail_texts.KINDS[kind], language=language,
            customised={key for key in texts}, placeholders=mail_texts.PLACEHOLDERS,
            default=mail_texts.default_texts(kind, language), **context)

    @get("/")
    async def notifications_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                                 kind: str = "confirmation", language: str = "") -> Template:
        language = language or principal.language
        mail_texts.check_kind(kind, language if language in LANGUAGES else "en")
        return await self._page(request, db, principal, kind, language if language in LANGUAGES else "en")

    @post("/look")
    async def save_look(self, request: Request[Any, Any, Any], db: AsyncSession,
                        principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        look = {"language": data.get("language", ""), "brand_colour": data.get("brand_colour", "")}
        try:
            await tenants.set_mail_look(db, principal, language=look["language"], brand_colour=look["brand_colour"],
                                        ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await self._page(request, db, principal, "confirmation", principal.language, status_code=422,
                                    errors=form_errors(problem), look=look)
        notifications.forget_company(principal.tenant_id)
        return redirect(BASE, done="mail_look_saved")

    @post("/{kind:str}/{language:str}")
    async def act(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, kind: str,
                  language: str) -> Template | Redirect:
        """One form, four buttons: save, preview, send me a test, back to the default."""
        mail_texts.check_kind(kind, language)
        data = await form_data(request)
        action = data.get("action", "save")
        here = f"{BASE}?kind={kind}&language={language}"
        if action == "reset":
            await mail_texts.reset_texts(db, principal, kind, language, ip=client_ip(request))
            notifications.forget_company(principal.tenant_id)
            return redirect(here, done="mail_text_reset")
        values = {"subject": data.get("subject", ""), "intro": data.get("intro", "")}
        partial = request.headers.get("HX-Request") == "true" and action == "preview"
        try:
            if action == "save":
                await mail_texts.save_texts(db, principal, kind, language, values["subject"], values["intro"],
                                            ip=client_ip(request))
                notifications.forget_company(principal.tenant_id)
                return redirect(here, done="mail_text_saved")
            if errors := mail_texts.text_problems(kind, values["subject"], values["intro"]):
                raise invalid(errors)
            if action == "test":
                sent_to = await notifications.send_test(db, principal, kind, language, values["subject"],
                                                        values["intro"])
                return await self._page(request, db, principal, kind, language, values=values,
                                        notice=f"A test of this mail is on its way to {sent_to}. It is in "
                                               "Outgoing mail too.")
            mail = await notifications.preview(db, principal, kind, language, values["subject"], values["intro"])
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            # htmx swaps only successful answers: the preview area then says what to fix.
            return await self._page(request, db, principal, kind, language, status_code=200 if partial else 422,
                                    values=values, errors=form_errors(problem), partial=partial)
        return await self._page(request, db, principal, kind, language, values=values, preview=mail, partial=partial)
