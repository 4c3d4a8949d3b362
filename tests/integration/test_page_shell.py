"""What surrounds every page: the icon browsers ask for, the API documentation served from our own
static files (it works offline, nothing from a CDN), and error pages that keep the console around
a signed-in visitor."""

from __future__ import annotations

import re

from factories import create_tenant, login, post_form

URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


async def test_the_favicon_is_an_image(client) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/")
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    page = await client.get("/login")
    assert '<link rel="icon" href="/favicon.ico"' in page.text
    svg = await client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")


async def test_api_docs_load_their_viewer_from_our_static_files(client) -> None:
    docs = await client.get("/api/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    urls = URL.findall(docs.text)
    assert urls, docs.text[:500]
    assert not [u for u in urls if not u.startswith("/")], urls  # no CDN, no other host
    assert "http://" not in docs.text.replace("http://www.w3.org", "") and "https://" not in docs.text
    scripts = [u for u in urls if u.endswith(".js")]
    assert len(scripts) == 2 and all(u.startswith("/static/vendor/swagger-ui-") for u in scripts), urls
    for url in urls:
        served = await client.get(url)
        assert served.status_code == 200, url
        assert len(served.content) > 50, url
    bundle = await client.get(next(u for u in scripts if u.endswith("swagger-ui-bundle.js")))
    assert "SwaggerUIBundle" in bundle.text[:20000] or "SwaggerUIBundle" in bundle.text
    schema = (await client.get("/api/docs/openapi.json")).json()
    assert "/api/v1/orders" in schema["paths"]


async def test_a_missing_console_page_keeps_the_console_around_a_signed_in_visitor(client, make_client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    for path in ("/app/nope", "/app/orders/not-an-order", f"/app/orders/{'0' * 8}-0000-7000-8000-{'0' * 12}"):
        missing = await client.get(path)
        assert missing.status_code == 404, path
        assert "Not found" in missing.text, path
        assert 'class="console-header"' in missing.text, path  # the console's navigation...
        assert 'href="/app/orders"' in missing.text and tenant.name in missing.text, path
        assert 'href="/pricing"' not in missing.text, path  # ...not the public site's header
        assert 'name="_csrf_token" value=""' not in missing.text, path  # logging out works from there
    # The log-out form on that page really works.
    token = re.search(r'name="_csrf_token" value="([^"]+)"', (await client.get("/app/nope")).text).group(1)
    assert token == (client.cookies.get("__Host-oms_csrf") or client.cookies.get("oms_csrf"))
    out = await post_form(client, "/logout")
    assert out.status_code in (302, 303)
    assert (await client.get("/app", follow_redirects=False)).status_code in (302, 303)

    stranger = await make_client()
    anonymous = await stranger.get("/app/nope")
    assert anonymous.status_code == 404
    assert 'class="console-header"' not in anonymous.text and tenant.name not in anonymous.text
    public = await stranger.get("/no-such-page")
    assert public.status_code == 404 and 'href="/pricing"' in public.text


async def test_an_error_page_that_cannot_find_its_visitor_is_still_an_error_page(client, monkeypatch) -> None:
    from core import error_pages

    async def broken(request):
        raise RuntimeError("the session store is down")

    tenant = await create_tenant()
    await login(client, tenant.email)
    monkeypatch.setattr(error_pages, "_visitor", broken)
    missing = await client.get("/app/nope")
    assert missing.status_code == 404 and "Not found" in missing.text
    assert 'class="console-header"' not in missing.text  # the plain page: nothing more to lose
