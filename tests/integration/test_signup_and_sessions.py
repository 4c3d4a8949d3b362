"""Sign-up, sign-in, sessions, CSRF and throttling, as a browser would do them."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from factories import PASSWORD, create_tenant, csrf_headers, login, post_form, unique


def signup_form(**overrides: str) -> dict[str, str]:
    form = {
        "company": unique("Maison"), "name": "Ada Lovelace", "email": f"{unique('ada')}@example.test",
        "password": PASSWORD, "country": "FR", "currency": "EUR", "timezone": "Europe/Paris",
    }
    form.update(overrides)
    return form


async def count_users() -> int:
    from core.db import get_database
    from tenants.models import User

    async with get_database().transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_signup_lands_signed_in_on_the_checklist(client) -> None:
    page = await client.get("/signup")
    assert page.status_code == 200
    assert 'name="timezone"' in page.text and 'name="currency"' in page.text
    form = signup_form()
    response = await post_form(client, "/signup", form)
    assert response.status_code == 303
    assert response.headers["location"] == "/app"
    home = await client.get("/app")
    assert home.status_code == 200
    assert form["company"] in home.text
    assert "Getting started" in home.text
    for step in ("Add a location", "Add products", "Load stock", "Publish a routing rule",
                 "Send a first order through the API", "Invite a teammate"):
        assert step in home.text


async def test_signup_refuses_bad_input_and_changes_nothing(client) -> None:
    existing = await create_tenant()
    await client.get("/signup")
    cases = {
        "email": (signup_form(email=existing.email.upper()), "already exists"),
        "password": (signup_form(password="short"), "at least 10 characters"),
        "timezone": (signup_form(timezone="Mars/Olympus"), "Unknown time zone"),
        "currency": (signup_form(currency="XYZ"), "Unknown currency"),
        "country": (signup_form(country="QQ"), "Unknown country"),
    }
    before = await count_users()
    for field, (form, message) in cases.items():
        response = await post_form(client, "/signup", form)
        assert response.status_code == 422, field
        assert message in response.text, field
        assert f'name="{field}"' in response.text
    common = await post_form(client, "/signup", signup_form(password="password123"))
    assert "too common" in common.text
    assert await count_users() == before
    assert (await client.get("/app", follow_redirects=False)).status_code in (302, 303)


async def test_session_cookie_is_host_prefixed_httponly_lax_and_secure_over_https(client) -> None:
    tenant = await create_tenant()
    response = await login(client, tenant.email)
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("__Host-oms_session="))
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in attributes and "secure" in attributes and "path=/" in attributes
    assert "samesite=lax" in attributes
    assert not any(a.startswith("domain=") for a in attributes)


async def test_plain_http_uses_a_non_secure_cookie(make_client) -> None:
    tenant = await create_tenant()
    client = await make_client("http://127.0.0.1:8000")
    response = await login(client, tenant.email)
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("oms_session="))
    assert "secure" not in session.lower()
    assert (await client.get("/app")).status_code == 200


async def test_sign_in_issues_a_new_session_and_logout_ends_it(client, make_client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    first = client.cookies.get("__Host-oms_session")
    await login(client, tenant.email)
    second = client.cookies.get("__Host-oms_session")
    assert first and second and first != second
    other = await make_client()
    other.cookies.set("__Host-oms_session", first)
    stale = await other.get("/app", follow_redirects=False)
    assert stale.status_code in (302, 303)

    response = await post_form(client, "/logout")
    assert response.status_code == 303
    client.cookies.set("__Host-oms_session", second)
    assert (await client.get("/app", follow_redirects=False)).status_code in (302, 303)


async def test_wrong_password_is_refused_and_audited(client) -> None:
    tenant = await create_tenant()
    await client.get("/login")
    response = await post_form(client, "/login", {"email": tenant.email, "password": "not the password"})
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    await login(client, tenant.email)
    log = await client.get("/app/settings/audit-log")
    assert "user.sign_in_failed" in log.text and "user.signed_in" in log.text


async def test_repeated_failures_throttle_sign_in(client) -> None:
    tenant = await create_tenant()
    await client.get("/login")
    for _ in range(5):
        response = await post_form(client, "/login", {"email": tenant.email, "password": "wrong guess!!"})
        assert response.status_code == 401
    blocked = await post_form(client, "/login", {"email": tenant.email, "password": tenant.password})
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.text
    assert (await client.get("/app", follow_redirects=False)).status_code in (302, 303)


async def test_forms_without_or_with_a_wrong_csrf_token_are_refused(client) -> None:
    await client.get("/signup")
    before = await count_users()
    missing = await client.post("/signup", data=signup_form())
    assert missing.status_code == 403
    assert "security check failed" in missing.text.lower()
    wrong = await client.post("/signup", data=signup_form(), headers={"x-csrftoken": "forged" + "0" * 80})
    assert wrong.status_code == 403
    assert await count_users() == before


async def test_htmx_requests_carry_the_token_from_the_page(client) -> None:
    page = await client.get("/signup")
    assert 'hx-headers=\'{"x-csrftoken": "' in page.text
    token = page.text.split('"x-csrftoken": "')[1].split('"')[0]
    assert token == csrf_headers(client)["x-csrftoken"]


async def test_console_requires_sign_in(client) -> None:
    response = await client.get("/app/settings/team", follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"].startswith("/login?next=/app/settings/team")


async def test_login_redirect_target_must_be_local(client) -> None:
    tenant = await create_tenant()
    await client.get("/login")
    response = await post_form(client, "/login", {"email": tenant.email, "password": tenant.password,
                                                  "next": "https://evil.example/phish"})
    assert response.headers["location"] == "/app"
    assert uuid.UUID(str(tenant.tenant_id))


async def test_simultaneous_signups_with_one_email_make_one_account(make_client) -> None:
    import asyncio

    email = f"{unique('twin')}@example.test"
    clients = [await make_client() for _ in range(3)]
    for c in clients:
        await c.get("/signup")
    responses = await asyncio.gather(*[post_form(c, "/signup", signup_form(email=email)) for c in clients])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [303, 422, 422]
    assert all("already exists" in r.text for r in responses if r.status_code == 422)


async def test_a_team_signing_in_from_one_address_is_not_throttled(make_client) -> None:
    """Only failures count against an address: a shop's whole team shares one IP."""
    tenant = await create_tenant()
    for _ in range(40):
        c = await make_client()
        assert (await login(c, tenant.email)).status_code == 303
