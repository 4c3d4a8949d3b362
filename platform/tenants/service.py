"""Tenants, identity and access: the logic, no HTTP. Services never commit."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation as v
from core.auth import Principal, role_choices
from core.db import set_scope, utcnow
from core.locale import LANGUAGES, default_language, locale_of
from core.mail import queue_mail
from core.problems import ProblemError, invalid, not_found
from core.security import (
    hash_password,
    new_secret,
    parse_scoped_token,
    password_problem,
    scoped_token,
    sha256_hex,
    verify_password,
)
from core.settings import get_settings
from tenants.models import ApiKey, AuditEvent, Invitation, Membership, PasswordReset, Role, Tenant, User

API_KEY_PREFIX = "oms"
INVITATION_PREFIX = "inv"
INVITATION_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class Actor:
    """Who does something, for the audit log: a principal, or a user acting on their own."""

    label: str
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    ip: str | None = None

    @classmethod
    def of(cls, principal: Principal, ip: str | None = None) -> Actor:
        return cls(label=principal.label, user_id=principal.user_id, api_key_id=principal.api_key_id, ip=ip)


async def audit(
    session: AsyncSession, tenant_id: uuid.UUID, actor: Actor, action: str, *,
    target: str | None = None, **details: Any,
) -> None:
    session.add(
        AuditEvent(
            tenant_id=tenant_id, action=action, actor_user_id=actor.user_id, actor_api_key_id=actor.api_key_id,
            actor_label=actor.label, target=target, ip=actor.ip, details=details,
        )
    )


# What higher domains do when a company signs up, in the sign-up's transaction (the tenant's
# scope is set): billing opens the company's account and trial. Registered by those domains.
TenantCreated = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]
ON_TENANT_CREATED: list[TenantCreated] = []


def on_tenant_created(hook: TenantCreated) -> TenantCreated:
    if hook not in ON_TENANT_CREATED:
        ON_TENANT_CREATED.append(hook)
    return hook


async def _user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.email) == email.lower()))


# --- sign-up ----------------------------------------------------------------------------


@dataclass
class SignupForm:
    company: str
    name: str
    email: str
    password: str
    country: str
    currency: str
    timezone: str


async def signup(session: AsyncSession, form: SignupForm, *, ip: str | None = None) -> tuple[Tenant, User]:
    errors: dict[str, str] = {}
    for field, label in (("company", "your company's name"), ("name", "your name")):
        if problem := v.check_required(getattr(form, field), label):
            errors[field] = problem
    email, email_problem = v.check_email(form.email)
    if email_problem:
        errors["email"] = email_problem
    elif email and await _user_by_email(session, email):
        errors["email"] = "An account with this email already exists. Log in instead, or reset your password."
    if problem := password_problem(form.password, avoid=[form.name, form.company, (email or "").split("@")[0]]):
        errors["password"] = problem
    if problem := v.check_country(form.country):
        errors["country"] = problem
    if problem := v.check_currency(form.currency):
        errors["currency"] = problem
    if problem := v.check_timezone(form.timezone):
        errors["timezone"] = problem
    if errors:
        raise invalid(errors)
    assert email is not None
    tenant = Tenant(name=form.company.strip(), country=form.country.upper(), currency=form.currency.upper(),
                    timezone=form.timezone, language=default_language(form.country.upper()))
    user = User(email=email, name=form.name.strip(), password_hash=await hash_password(form.password),
                last_login_at=utcnow())
    session.add_all([tenant, user])
    try:
        await session.flush()
    except IntegrityError:
        # Two sign-ups with one email at the same moment: the unique index decides.
        raise invalid({"email": "An account with this email already exists. Log in instead."}) from None
    await set_scope(session, tenant_id=tenant.id, user_id=user.id)
    session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=Role.OWNER.value))
    await audit(session, tenant.id, Actor(email, user.id, ip=ip), "tenant.created", target=tenant.name)
    for hook in ON_TENANT_CREATED:
        await hook(session, tenant.id)
    return tenant, user


async def create_tenant_with_owner(
    session: AsyncSession, *, name: str, email: str, password: str, owner_name: str | None = None,
    country: str = "US", currency: str = "USD", timezone: str = "UTC",
) -> tuple[Tenant, User, str]:
    """For operators and scripts (`oms tenants create`): the tenant, its owner and an API key."""
    tenant, user = await signup(
        session,
        SignupForm(company=name, name=owner_name or email.split("@")[0], email=email, password=password,
                   country=country, currency=currency, timezone=timezone),
    )
    principal = Principal(tenant_id=tenant.id, role="owner", label=user.email, tenant_name=tenant.name,
                          timezone=tenant.timezone, currency=tenant.currency, user_id=user.id)
    _, token = await create_api_key(session, principal, name="Created with oms tenants create")
    return tenant, user, token


# --- sign-in ----------------------------------------------------------------------------

def _locale(tenant: Tenant) -> str:
    return str(locale_of(tenant.language, tenant.country))



async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Membership, Tenant]]:
    """A user's memberships, newest first. Runs in the user's own scope (see the policy)."""
    await set_scope(session, tenant_id=None, user_id=user_id)
    rows = await session.execute(
        select(Membership, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user_id, Tenant.status == "active")
        .order_by(Membership.created_at.desc())
    )
    return [(m, t) for m, t in rows]


async def authenticate(
    session: AsyncSession, email: str, password: str, *, ip: str | None = None
) -> tuple[User, Membership] | None:
    """The user and the membership to open, or None (and an audit entry in each of the user's
    tenants) when the password is wrong."""
    user = await _user_by_email(session, (email or "").strip())
    ok = await verify_password(user.password_hash if user else None, password or "")
    if user is None:
        return None
    memberships = await memberships_of(session, user.id)
    if not ok:
        for membership, _ in memberships:
            await set_scope(session, tenant_id=membership.tenant_id)
            await audit(session, membership.tenant_id, Actor(user.email, user.id, ip=ip), "user.sign_in_failed",
                        target=user.email)
        return None
    if not memberships:
        return None
    membership = memberships[0][0]
    user.last_login_at = utcnow()
    await set_scope(session, tenant_id=membership.tenant_id, user_id=user.id)
    await audit(session, membership.tenant_id, Actor(user.email, user.id, ip=ip), "user.signed_in",
                target=user.email)
    return user, membership


async def principal_for_session(session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Principal | None:
    await set_scope(session, tenant_id=tenant_id, user_id=user_id)
    row = (
        await session.execute(
            select(Membership.role, Membership.locations, User, Tenant)
            .join(User, User.id == Membership.user_id)
            .join(Tenant, Tenant.id == Membership.tenant_id)
            .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id, Tenant.status == "active")
        )
    ).first()
    if row is None:
        return None
    role, locations, user, tenant = row
    return Principal(
        tenant_id=tenant.id, role=role, label=user.email, tenant_name=tenant.name, timezone=tenant.timezone,
        currency=tenant.currency, user_id=user.id, user_name=user.name,
        locations=frozenset(locations or ()) if role == Role.STORE_ASSOCIATE.value else None,
        language=tenant.language, locale=_locale(tenant), standing=tenant.billing_standing,
    )


async def principal_for_api_key(session: AsyncSession, token: str) -> Principal | None:
    parsed = parse_scoped_token(token, API_KEY_PREFIX)
    if parsed is None:
        return None
    tenant_id, digest = parsed
    await set_scope(session, tenant_id=tenant_id)
    row = (
        await session.execute(
            select(ApiKey, Tenant)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None),
                   Tenant.status == "active")
        )
    ).first()
    if row is None:
        return None
    key, tenant = row
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        key.last_used_at = now
    return Principal(
        tenant_id=tenant.id, role=key.role, label=f"API key {key.name} ({key.prefix}…)", tenant_name=tenant.name,
        timezone=tenant.timezone, currency=tenant.currency, api_key_id=key.id, channel=key.channel,
        # Keys are not made for store associates; one that says so works at no location.
        locations=frozenset() if key.role == Role.STORE_ASSOCIATE.value else None,
        language=tenant.language, locale=_locale(tenant), standing=tenant.billing_standing,
    )


# --- API keys ---------------------------------------------------------------------------


# What a key may be made for, and what each may do (the routes of a narrow key name its role).
KEY_ROLES = {
    "admin": "Admin",
    "read_only": "Read only",
    "order_intake": "Orders of one channel",
    "feed_intake": "Stock feeds",
}


async def create_api_key(session: AsyncSession, principal: Principal, *, name: str, role: str = "admin",
                         channel: str | None = None, channels: tuple[str, ...] = (),
                         ip: str | None = None) -> tuple[ApiKey, str]:
    """Returns the key and its secret, which is shown once and never stored. An order-intake key
    is for one of ``channels``."""
    errors: dict[str, str] = {}
    if problem := v.check_required(name, "a name for the key", max_length=100):
        errors["name"] = problem
    if role not in KEY_ROLES:
        errors["role"] = f"Choose one of: {', '.join(KEY_ROLES)}."
    if role == "order_intake" and channel not in channels:
        errors["channel"] = f"Choose the channel whose orders it sends: {', '.join(channels)}."
    if errors:
        raise invalid(errors)
    token, digest = scoped_token(principal.tenant_id, API_KEY_PREFIX)
    key = ApiKey(tenant_id=principal.tenant_id, name=name.strip(), prefix=token[-6:], key_hash=digest,
                 role=role, channel=channel if role == "order_intake" else None, created_by=principal.user_id)
    session.add(key)
    await session.flush()
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "api_key.created", target=key.name,
                key_id=str(key.id), role=role, **({"channel": key.channel} if key.channel else {}))
    return key, token


async def list_api_keys(session: AsyncSession, principal: Principal) -> list[ApiKey]:
    return list(
        await session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id).order_by(ApiKey.created_at.desc())
        )
    )


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID,
                         ip: str | None = None) -> ApiKey:
    key = await session.scalar(
        select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id, ApiKey.id == key_id).with_for_update()
    )
    if key is None:
        raise not_found("API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await audit(session, principal.tenant_id, Actor.of(principal, ip), "api_key.revoked", target=key.name,
                    key_id=str(key.id))
    return key


# --- members and invitations ------------------------------------------------------------


async def list_members(session: AsyncSession, principal: Principal) -> list[tuple[Membership, User]]:
    rows = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == principal.tenant_id)
        .order_by(Membership.created_at)
    )
    return [(m, u) for m, u in rows]


async def _member(session: AsyncSession, principal: Principal, member_id: uuid.UUID) -> tuple[Membership, User]:
    row = (
        await session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == principal.tenant_id, Membership.id == member_id)
            .with_for_update(of=Membership)
        )
    ).first()
    if row is None:
        raise not_found("Member")
    return row[0], row[1]


async def _owners_locked(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """How many owners the company has, their rows locked (in a fixed order) until the
    transaction ends: two owners demoting each other at once can't leave none."""
    owners = await session.scalars(
        select(Membership.id).where(Membership.tenant_id == tenant_id, Membership.role == Role.OWNER.value)
        .order_by(Membership.id).with_for_update()
    )
    return len(list(owners))


def _locations_problem(role: str, locations: list[str], known: list[str]) -> str | None:
    if role != Role.STORE_ASSOCIATE.value:
        return None
    if not locations:
        return "A store associate works at one location at least: choose theirs."
    unknown = sorted(set(locations) - set(known))
    return f"Unknown locations: {', '.join(unknown)}." if unknown else None


async def change_role(session: AsyncSession, principal: Principal, member_id: uuid.UUID, role: str, *,
                      locations: list[str] | None = None, known_locations: list[str] | None = None,
                      ip: str | None = None) -> Membership:
    """A member's role, and a store associate's locations (kept when ``locations`` is None)."""
    owners = await _owners_locked(session, principal.tenant_id)
    membership, user = await _member(session, principal, member_id)
    allowed = list(role_choices(principal.role))
    if problem := v.check_role(role, allowed=allowed):
        raise invalid({"role": problem})
    if membership.role == Role.OWNER.value and principal.role != Role.OWNER.value:
        raise ProblemError(403, "Forbidden", "Only an owner can change another owner's role.")
    wanted = sorted(set(membership.locations if locations is None else locations))
    if locations is not None and (problem := _locations_problem(role, wanted, known_locations or [])):
        raise invalid({"locations": problem})
    if membership.role == role and wanted == sorted(membership.locations or []):
        return membership
    if membership.role == Role.OWNER.value and role != Role.OWNER.value and owners <= 1:
        raise invalid({"role": "The company must keep at least one owner; make someone else owner first."})
    before, before_locations = membership.role, list(membership.locations or [])
    membership.role = role
    membership.locations = wanted if role == Role.STORE_ASSOCIATE.value else []
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "member.role_changed", target=user.email,
                before=before, after=role,
                **({"locations": membership.locations, "locations_before": before_locations}
                   if role == Role.STORE_ASSOCIATE.value or before_locations else {}))
    return membership


async def remove_member(session: AsyncSession, principal: Principal, member_id: uuid.UUID,
                        ip: str | None = None) -> None:
    owners = await _owners_locked(session, principal.tenant_id)
    membership, user = await _member(session, principal, member_id)
    if membership.role == Role.OWNER.value and principal.role != Role.OWNER.value:
        raise ProblemError(403, "Forbidden", "Only an owner can remove an owner.")
    if membership.role == Role.OWNER.value and owners <= 1:
        raise invalid({"member": "The company must keep at least one owner."})
    await session.delete(membership)
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "member.removed", target=user.email)


def invitation_link(token: str) -> str:
    return f"{get_settings().public_url}/invitations/{token}"


async def invite(session: AsyncSession, principal: Principal, *, email: str, role: str,
                 locations: list[str] | None = None, known_locations: list[str] | None = None,
                 ip: str | None = None) -> tuple[Invitation, str]:
    errors: dict[str, str] = {}
    normalized, problem = v.check_email(email)
    if problem:
        errors["email"] = problem
    if problem := v.check_role(role, allowed=list(role_choices(principal.role))):
        errors["role"] = problem
    locations = sorted(set(locations or []))
    if problem := _locations_problem(role, locations, known_locations or []):
        errors["locations"] = problem
    if not errors and normalized:
        member = await session.scalar(
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == principal.tenant_id, func.lower(User.email) == normalized)
        )
        if member is not None:
            errors["email"] = f"{normalized} is already a member of {principal.tenant_name}."
    if errors:
        raise invalid(errors)
    assert normalized is not None
    now = utcnow()
    # A new invitation replaces any pending one for the same address.
    await session.execute(
        update(Invitation)
        .where(Invitation.tenant_id == principal.tenant_id, func.lower(Invitation.email) == normalized,
               Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    token, digest = scoped_token(principal.tenant_id, INVITATION_PREFIX)
    invitation = Invitation(tenant_id=principal.tenant_id, email=normalized, role=role, token_hash=digest,
                            locations=locations if role == Role.STORE_ASSOCIATE.value else [],
                            invited_by=principal.user_id, expires_at=now + INVITATION_TTL)
    session.add(invitation)
    await session.flush()
    inviter = principal.user_name or principal.tenant_name
    await queue_mail(
        session, tenant_id=principal.tenant_id, to=normalized, kind="invitation", sent_by=principal.user_id,
        meta={"role": role},
        subject=f"{inviter} invited you to {principal.tenant_name} on OMS",
        body=(
            f"Hello,\n\n{inviter} invited you to join {principal.tenant_name} on OMS as "
            f"{Role(role).label.lower()}.\n\nAccept the invitation (valid for 7 days):\n{invitation_link(token)}\n"
        ),
    )
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "member.invited", target=normalized,
                role=role, **({"locations": invitation.locations} if invitation.locations else {}))
    return invitation, token


async def list_invitations(session: AsyncSession, principal: Principal) -> list[Invitation]:
    return list(
        await session.scalars(
            select(Invitation)
            .where(Invitation.tenant_id == principal.tenant_id, Invitation.accepted_at.is_(None),
                   Invitation.revoked_at.is_(None))
            .order_by(Invitation.created_at.desc())
        )
    )


async def revoke_invitation(session: AsyncSession, principal: Principal, invitation_id: uuid.UUID,
                            ip: str | None = None) -> None:
    invitation = await session.scalar(
        select(Invitation).where(Invitation.tenant_id == principal.tenant_id, Invitation.id == invitation_id)
    )
    if invitation is None:
        raise not_found("Invitation")
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = utcnow()
        await audit(session, principal.tenant_id, Actor.of(principal, ip), "invitation.revoked",
                    target=invitation.email)


@dataclass
class PendingInvitation:
    invitation: Invitation
    tenant: Tenant
    existing_user: User | None


async def open_invitation(session: AsyncSession, token: str) -> PendingInvitation:
    """The invitation behind a link, or a ProblemError saying why it can't be used."""
    parsed = parse_scoped_token(token, INVITATION_PREFIX)
    gone = ProblemError(404, "Invitation not found",
                        "This invitation link is not valid. Ask for a new invitation.")
    if parsed is None:
        raise gone
    tenant_id, digest = parsed
    await set_scope(session, tenant_id=tenant_id)
    row = (
        await session.execute(
            select(Invitation, Tenant)
            .join(Tenant, Tenant.id == Invitation.tenant_id)
            .where(Invitation.tenant_id == tenant_id, Invitation.token_hash == digest)
            .with_for_update(of=Invitation)
        )
    ).first()
    if row is None:
        raise gone
    invitation, tenant = row
    if invitation.accepted_at is not None:
        raise ProblemError(410, "Invitation already used",
                           "This invitation was already accepted. Log in, or ask for a new invitation.")
    if invitation.revoked_at is not None:
        raise ProblemError(410, "Invitation withdrawn",
                           "This invitation was withdrawn or replaced by a newer one. Ask for a new invitation.")
    if invitation.expires_at <= utcnow():
        raise ProblemError(410, "Invitation expired",
                           "This invitation has expired (they last 7 days). Ask for a new invitation.")
    return PendingInvitation(invitation, tenant, await _user_by_email(session, invitation.email))


async def accept_invitation(
    session: AsyncSession, token: str, *, name: str = "", password: str = "", ip: str | None = None
) -> tuple[User, Membership]:
    pending = await open_invitation(session, token)
    invitation = pending.invitation
    user = pending.existing_user
    if user is not None:
        if not await verify_password(user.password_hash, password):
            for own, _ in await memberships_of(session, user.id):
                await set_scope(session, tenant_id=own.tenant_id)
                await audit(session, own.tenant_id, Actor(user.email, user.id, ip=ip),
                            "user.sign_in_failed", target=user.email, via="invitation")
            raise invalid({"password": "Wrong password for this account."})
    else:
        errors: dict[str, str] = {}
        if problem := v.check_required(name, "your name"):
            errors["name"] = problem
        if problem := password_problem(password, avoid=[name, invitation.email.split("@")[0]]):
            errors["password"] = problem
        if errors:
            raise invalid(errors)
        user = User(email=invitation.email, name=name.strip(), password_hash=await hash_password(password))
        session.add(user)
        await session.flush()
    await set_scope(session, tenant_id=invitation.tenant_id, user_id=user.id)
    membership = await session.scalar(
        select(Membership).where(Membership.tenant_id == invitation.tenant_id, Membership.user_id == user.id)
    )
    if membership is None:
        membership = Membership(tenant_id=invitation.tenant_id, user_id=user.id, role=invitation.role,
                                locations=list(invitation.locations or []))
        session.add(membership)
    invitation.accepted_at = utcnow()
    invitation.accepted_by = user.id
    user.last_login_at = utcnow()
    await session.flush()
    await audit(session, invitation.tenant_id, Actor(user.email, user.id, ip=ip), "invitation.accepted",
                target=user.email, role=membership.role)
    return user, membership


# --- passwords --------------------------------------------------------------------------


async def request_password_reset(session: AsyncSession, email: str, *, ip: str | None = None) -> None:
    """Mails a reset link when the account exists; says nothing either way."""
    normalized, problem = v.check_email(email)
    if problem:
        raise invalid({"email": problem})
    assert normalized is not None
    user = await _user_by_email(session, normalized)
    if user is None:
        return
    memberships = await memberships_of(session, user.id)
    token = new_secret()
    session.add(PasswordReset(user_id=user.id, token_hash=sha256_hex(token), expires_at=utcnow() + RESET_TTL))
    if not memberships:
        return
    tenant_id = memberships[0][0].tenant_id
    await set_scope(session, tenant_id=tenant_id, user_id=user.id)
    link = f"{get_settings().public_url}/reset-password/{token}"
    await queue_mail(
        session, tenant_id=tenant_id, to=user.email, kind="password_reset", subject="Reset your OMS password",
        body=(f"Hello {user.name},\n\nSomeone asked to reset the password of your OMS account. If it was you, "
              f"choose a new password here (valid for 1 hour):\n{link}\n\nIf not, ignore this message."),
    )
    await audit(session, tenant_id, Actor(user.email, user.id, ip=ip), "password.reset_requested",
                target=user.email)


async def open_password_reset(session: AsyncSession, token: str) -> tuple[PasswordReset, User]:
    row = (
        await session.execute(
            select(PasswordReset, User)
            .join(User, User.id == PasswordReset.user_id)
            .where(PasswordReset.token_hash == sha256_hex(token or ""))
            .with_for_update(of=PasswordReset)
        )
    ).first()
    if row is None:
        raise ProblemError(404, "Link not valid", "This password reset link is not valid. Ask for a new one.")
    reset, user = row
    if reset.used_at is not None:
        raise ProblemError(410, "Link already used", "This reset link was already used. Ask for a new one.")
    if reset.expires_at <= utcnow():
        raise ProblemError(410, "Link expired", "This reset link has expired (they last 1 hour). Ask for a new one.")
    return reset, user


async def reset_password(session: AsyncSession, token: str, password: str, *, ip: str | None = None) -> User:
    reset, user = await open_password_reset(session, token)
    if problem := password_problem(password, avoid=[user.name, user.email.split("@")[0]]):
        raise invalid({"password": problem})
    user.password_hash = await hash_password(password)
    now = utcnow()
    reset.used_at = now
    await session.execute(
        update(PasswordReset).where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    for membership, _ in await memberships_of(session, user.id):
        await set_scope(session, tenant_id=membership.tenant_id, user_id=user.id)
        await audit(session, membership.tenant_id, Actor(user.email, user.id, ip=ip), "password.reset",
                    target=user.email)
    return user


async def audit_events(session: AsyncSession, principal: Principal, *, limit: int = 200) -> list[AuditEvent]:
    return list(
        await session.scalars(
            select(AuditEvent).where(AuditEvent.tenant_id == principal.tenant_id)
            .order_by(AuditEvent.id.desc()).limit(limit)
        )
    )


TIMEZONE_CACHE_SECONDS = 60.0
_timezones: dict[uuid.UUID, tuple[float, str]] = {}


async def timezone_of(session: AsyncSession, tenant_id: uuid.UUID, *, fresh: bool = False) -> str:
    """The company's time zone, for work done without a signed-in principal (workers). Kept
    for a minute (unless ``fresh``): workers ask for it with every order they route."""
    cached = _timezones.get(tenant_id)
    if cached is not None and cached[0] > time.monotonic() and not fresh:
        return cached[1]
    timezone = await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))
    if timezone is None:
        raise not_found("Tenant")
    _timezones[tenant_id] = (time.monotonic() + TIMEZONE_CACHE_SECONDS, timezone)
    return timezone


PICKUP_WINDOW_DAYS = (1, 60)


async def pickup_window_of(session: AsyncSession, tenant_id: uuid.UUID) -> timedelta:
    """How long a click & collect order waits at the store before it expires."""
    days = await session.scalar(select(Tenant.pickup_window_days).where(Tenant.id == tenant_id))
    return timedelta(days=days or 7)


async def set_pickup_window(session: AsyncSession, principal: Principal, days: int, ip: str | None = None) -> Tenant:
    low, high = PICKUP_WINDOW_DAYS
    if not low <= days <= high:
        raise invalid({"pickup_window_days": f"Give a whole number of days from {low} to {high}."})
    tenant = await get_tenant(session, principal)
    if tenant.pickup_window_days != days:
        await audit(session, principal.tenant_id, Actor.of(principal, ip), "settings.pickup_window_changed",
                    target=f"{tenant.pickup_window_days} → {days} days")
        tenant.pickup_window_days = days
    return tenant


async def get_tenant(session: AsyncSession, principal: Principal) -> Tenant:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise not_found("Tenant")
    return tenant


async def setup_counts(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, int]:
    """How many members, pending invitations and API keys the company has, for the checklist."""
    counts = {}
    for name, model in (("members", Membership), ("invitations", Invitation), ("api_keys", ApiKey)):
        counts[name] = int(await session.scalar(select(func.count()).select_from(model)
                                                .where(model.tenant_id == tenant_id)) or 0)
    return counts


# --- how the company's mails look ---------------------------------------------------------------

@dataclass(frozen=True)
class CompanyProfile:
    """What a mail to the company's customers needs to know of it."""

    name: str
    country: str
    currency: str
    timezone: str
    language: str  # the default language of its customer mails (and of its console's formats)
    brand_colour: str  # "#rrggbb"


async def company_profile(session: AsyncSession, tenant_id: uuid.UUID) -> CompanyProfile:
    row = (await session.execute(select(Tenant.name, Tenant.country, Tenant.currency, Tenant.timezone,
                                        Tenant.language, Tenant.brand_colour).where(Tenant.id == tenant_id))).first()
    if row is None:
        raise not_found("Tenant")
    return CompanyProfile(*row)


BRAND_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")  # #rrggbb, as mails and pages use it


async def set_mail_look(session: AsyncSession, principal: Principal, *, language: str, brand_colour: str,
                        ip: str | None = None) -> Tenant:
    """The company's default language and brand colour, every problem reported at once."""
    errors: dict[str, str] = {}
    language, brand_colour = (language or "").strip(), (brand_colour or "").strip()
    if language not in LANGUAGES:
        errors["language"] = f"Choose one of the languages offered: {', '.join(LANGUAGES.values())}."
    if not BRAND_COLOUR.fullmatch(brand_colour):
        errors["brand_colour"] = "Give the colour as # followed by six hexadecimal digits, such as #1d4ed8."
    if errors:
        raise invalid(errors)
    tenant = await get_tenant(session, principal)
    brand_colour = brand_colour.lower()
    actor = Actor.of(principal, ip)
    if tenant.language != language:
        await audit(session, principal.tenant_id, actor, "settings.language_changed",
                    target=f"{tenant.language} → {language}")
        tenant.language = language
    if tenant.brand_colour != brand_colour:
        await audit(session, principal.tenant_id, actor, "settings.brand_colour_changed",
                    target=f"{tenant.brand_colour} → {brand_colour}")
        tenant.brand_colour = brand_colour
    return tenant


# --- billing standing ---------------------------------------------------------------------

STANDINGS = ("good", "payment_failed", "past_due", "restricted", "intake_refused")


async def billing_standing(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    return str(await session.scalar(select(Tenant.billing_standing).where(Tenant.id == tenant_id)) or "good")


async def set_billing_standing(session: AsyncSession, tenant_id: uuid.UUID, standing: str) -> None:
    """Billing's dunning moves it; API keys cached by this process see it at once, other
    processes' within seconds (``tenants.auth.KEY_CACHE_SECONDS``)."""
    if standing not in STANDINGS:
        raise ValueError(f"unknown standing {standing!r}")
    await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(billing_standing=standing))


async def owner_emails(session: AsyncSession, tenant_id: uuid.UUID) -> list[str]:
    """The company's owners' addresses (in the tenant's scope), oldest membership first."""
    return list(await session.scalars(
        select(User.email).join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id, Membership.role == Role.OWNER.value)
        .order_by(Membership.created_at)))


async def tenant_profile(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)
