"""Inviting teammates, roles, and resetting a forgotten password."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import update

from factories import create_tenant, login, mail_to, post_form, run_outbox_inline


async def invite(client, tenant, email: str, role: str = "merchandiser") -> str:
    response = await post_form(client, "/app/settings/team/invitations", {"email": email, "role": role})
    assert response.status_code == 303, response.text
    await run_outbox_inline(tenant.tenant_id)
    [message] = await mail_to(tenant.tenant_id, email)
    assert message.status == "sent"
    return re.search(r"/invitations/(inv_[\w-]+)", message.body_text).group(1)


async def test_invitation_by_email_link_creates_a_member_with_the_role(client, make_client) -> None:
    owner = await create_tenant()
    await login(client, owner.email)
    email = f"sam-{uuid.uuid4().hex[:6]}@example.test"
    token = await invite(client, owner, email, "customer_service")
    guest = await make_client()
    page = await guest.get(f"/invitations/{token}")
    assert page.status_code == 200 and owner.name in page.text and email in page.text
    accepted = await post_form(guest, f"/invitations/{token}",
                               {"name": "Sam Support", "password": "sunny meadow path"})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/app"
    home = await guest.get("/app")
    assert owner.name in home.text
    team = await client.get("/app/settings/team")
    row = team.text.split(f'data-member="{email}"')[1].split("</tr>")[0]
    assert 'value="customer_service" selected' in row
    log = await client.get("/app/settings/audit-log")
    assert "member.invited" in log.text and "invitation.accepted" in log.text


async def test_a_used_or_expired_invitation_is_refused_and_changes_nothing(client, make_client) -> None:
    from core.db import get_database
    from tenants.models import Invitation

    owner = await create_tenant()
    await login(client, owner.email)
    used = await invite(client, owner, f"once-{uuid.uuid4().hex[:6]}@example.test")
    first = await make_client()
    await first.get("/login")
    accepted = await post_form(first, f"/invitations/{used}", {"name": "First", "password": "granite harbor"})
    assert accepted.status_code == 303
    second = await make_client()
    await second.get("/login")
    again = await post_form(second, f"/invitations/{used}", {"name": "Second", "password": "granite harbor"})
    assert again.status_code == 410 and "already" in again.text

    expiring_email = f"late-{uuid.uuid4().hex[:6]}@example.test"
    expiring = await invite(client, owner, expiring_email)
    async with get_database().transaction(tenant_id=owner.tenant_id) as session:
        await session.execute(update(Invitation).where(Invitation.tenant_id == owner.tenant_id,
                                                       Invitation.email == expiring_email)
                              .values(expires_at=Invitation.created_at - timedelta(seconds=1)))
    late = await post_form(second, f"/invitations/{expiring}", {"name": "Late", "password": "granite harbor"})
    assert late.status_code == 410 and "expired" in late.text
    assert (await second.get("/app", follow_redirects=False)).status_code in (302, 303)
    forged = await second.get(f"/invitations/inv_{owner.tenant_id.hex}_forged")
    assert forged.status_code == 404


async def test_existing_user_accepts_with_their_password_and_can_switch(client, make_client) -> None:
    first = await create_tenant()
    second = await create_tenant()
    await login(client, second.email)
    token = await invite(client, second, first.email, "read_only")
    browser = await make_client()
    await browser.get("/login")
    wrong = await post_form(browser, f"/invitations/{token}", {"password": "not my password"})
    assert wrong.status_code == 422 and "Wrong password" in wrong.text
    ok = await post_form(browser, f"/invitations/{token}", {"password": first.password})
    assert ok.status_code == 303
    companies = await browser.get("/app/companies")
    assert first.name in companies.text and second.name in companies.text
    switched = await post_form(browser, f"/app/companies/{first.tenant_id}/switch")
    assert switched.status_code == 303
    assert first.name in (await browser.get("/app")).text


async def test_role_changes_are_audited_and_the_last_owner_stays(client, make_client) -> None:
    owner = await create_tenant()
    await login(client, owner.email)
    email = f"mia-{uuid.uuid4().hex[:6]}@example.test"
    token = await invite(client, owner, email, "marketing")
    mate = await make_client()
    await mate.get("/login")
    await post_form(mate, f"/invitations/{token}", {"name": "Mia", "password": "orchard lantern"})
    team = await client.get("/app/settings/team")
    member_id = team.text.split(f'data-member="{email}"')[1].split("/app/settings/team/members/")[1].split("/")[0]
    changed = await post_form(client, f"/app/settings/team/members/{member_id}/role", {"role": "admin"})
    assert changed.status_code == 303
    assert "member.role_changed" in (await client.get("/app/settings/audit-log")).text
    bad = await post_form(client, f"/app/settings/team/members/{member_id}/role", {"role": "emperor"})
    assert bad.status_code == 422

    # the new admin may not demote or remove the only owner
    from sqlalchemy import select

    from core.db import get_database
    from tenants.models import Membership

    async with get_database().transaction(tenant_id=owner.tenant_id) as session:
        owner_membership = await session.scalar(select(Membership.id).where(
            Membership.tenant_id == owner.tenant_id, Membership.user_id == owner.user_id))
    refused = await post_form(mate, f"/app/settings/team/members/{owner_membership}/role", {"role": "read_only"})
    assert refused.status_code == 403
    assert "owner" in refused.text


async def test_forgotten_password_is_reset_by_mailed_link(client, make_client) -> None:
    tenant = await create_tenant()
    other_device = await make_client()
    await login(other_device, tenant.email)
    await client.get("/forgot-password")
    sent = await post_form(client, "/forgot-password", {"email": tenant.email})
    assert sent.status_code == 200 and "If an account exists" in sent.text
    unknown = await post_form(client, "/forgot-password", {"email": "nobody@example.test"})
    assert unknown.status_code == 200 and unknown.text.count("If an account exists") == 1
    await run_outbox_inline(tenant.tenant_id)
    [mail] = await mail_to(tenant.tenant_id, tenant.email)
    link = re.search(r"/reset-password/[\w-]+", mail.body_text).group(0)
    weak = await post_form(client, link, {"password": "short"})
    assert weak.status_code == 422
    done = await post_form(client, link, {"password": "brand new secret phrase"})
    assert done.status_code == 303
    reused = await post_form(client, link, {"password": "yet another phrase"})
    assert reused.status_code == 410
    # old password refused, new one works, and the other device was signed out
    await client.get("/login")
    old = await post_form(client, "/login", {"email": tenant.email, "password": tenant.password})
    assert old.status_code == 401
    await login(client, tenant.email, "brand new secret phrase")
    assert (await other_device.get("/app", follow_redirects=False)).status_code in (302, 303)


async def test_guessing_a_password_through_an_invitation_is_throttled(client, make_client) -> None:
    victim = await create_tenant()
    inviter = await create_tenant()
    await login(client, inviter.email)
    token = await invite(client, inviter, victim.email, "read_only")
    guesser = await make_client()
    await guesser.get("/login")
    for attempt in range(5):
        wrong = await post_form(guesser, f"/invitations/{token}", {"password": f"guess number {attempt}"})
        assert wrong.status_code == 422
    blocked = await post_form(guesser, f"/invitations/{token}", {"password": victim.password})
    assert blocked.status_code == 429
    assert "Too many" in blocked.text
    # the victim's own company sees the failed attempts in its audit log
    from sqlalchemy import func, select

    from core.db import get_database
    from tenants.models import AuditEvent

    async with get_database().transaction(tenant_id=victim.tenant_id) as session:
        failures = await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.tenant_id == victim.tenant_id, AuditEvent.action == "user.sign_in_failed"))
    assert failures == 5


async def test_reset_links_never_show_in_the_companys_mail_log(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    await post_form(client, "/forgot-password", {"email": tenant.email})
    await run_outbox_inline(tenant.tenant_id)
    [mail] = await mail_to(tenant.tenant_id, tenant.email)
    assert "/reset-password/" in mail.body_text  # delivered to the recipient
    shown = await client.get(f"/app/settings/mail-log/{mail.id}")
    assert shown.status_code == 200
    assert "/reset-password/" not in shown.text
    assert "sent to the recipient only" in shown.text
