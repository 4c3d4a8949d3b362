"""Every problem at once, each on its field, in plain words: the API's 422 answers, the location
form (money typed as people write it, coordinates found from the city), the settings forms and
sign-up."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from httpx import AsyncClient

from factories import bearer, create_tenant, login, post_form
from inventory_factories import API, location_body

# What a plain message never contains: the schema's internals.
INTERNALS = re.compile(r"Expected `|`\$|\$\.|regex|msgspec|got `")


def field_errors(response: Any) -> dict[str, str]:
    assert response.status_code == 422, (response.status_code, response.text[:800])
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    for field, message in errors.items():
        assert not INTERNALS.search(message), (field, message)
    return errors


def form_field_errors(html: str) -> dict[str, str]:
    """Field name → the message shown beside it (the ``<small id="<name>-error">`` of the macros)."""
    return {name: unescape(re.sub(r"\s+", " ", text).strip())
            for name, text in re.findall(r'<small id="([^"]+)-error" class="field-error">(.*?)</small>', html, re.S)}


async def test_an_order_with_several_mistakes_gets_every_one_back_at_once(client: AsyncClient) -> None:
    tenant = await create_tenant()
    body = {"channel": "web", "currency": "EUROS", "total_minor": "lots",
            "lines": [{"sku": "", "quantity": 1.5, "unit_price_minor": 1000},
                      {"sku": "TEE", "quantity": 1}],
            "customer": {"email": "ann@example.test", "nickname": "Ann"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 123}}}
    errors = field_errors(await client.post(f"{API}/orders", json=body, headers=bearer(tenant.api_key)))
    assert errors == {
        "currency": "Use a three-letter currency code such as EUR or USD.",
        "total_minor": "Enter a whole number.",
        "lines[0].sku": "This field is required.",
        "lines[0].quantity": "Enter a whole number.",
        "lines[1].unit_price_minor": "This field is required.",
        "customer.nickname": "This field is not expected here: remove it or check its spelling.",
        "delivery.address.latitude": "Enter a number from -90 to 90.",
    }
    orders = await client.get(f"{API}/orders", headers=bearer(tenant.api_key))
    assert orders.json()["orders"] == []


async def test_a_location_with_several_mistakes_gets_every_one_back_at_once(client: AsyncClient) -> None:
    tenant = await create_tenant()
    body = location_body("bad code!", name="", kind="barn", country="FRA", priority=10**8,
                         tags=["x" * 51], daily_capacity=-1)
    errors = field_errors(await client.post(f"{API}/locations", json=body, headers=bearer(tenant.api_key)))
    assert errors == {
        "code": "Use letters, digits, dots, dashes or slashes, starting with a letter or digit.",
        "name": "This field is required.",
        "kind": "Choose one of: marketplace, store, warehouse.",
        "country": "Use a two-letter country code such as FR or US.",
        "daily_capacity": "Enter a whole number from 0 to 1,000,000,000.",
        "priority": "Enter a whole number from -1,000,000 to 1,000,000.",
        "tags[0]": "Use at most 50 characters.",
    }
    # The same words when a location is replaced (a body read by the handler itself).
    created = await client.post(f"{API}/locations", json=location_body("WH-1"), headers=bearer(tenant.api_key))
    assert created.status_code == 201, created.text
    replaced = await client.put(f"{API}/locations/{created.json()['id']}", headers=bearer(tenant.api_key),
                                json=location_body("WH 1", latitude="north", country=""))
    assert field_errors(replaced) == {
        "code": "Use letters, digits, dots, dashes or slashes, starting with a letter or digit.",
        "country": "This field is required.",
        "latitude": "Enter a number.",
    }
    listed = (await client.get(f"{API}/locations", headers=bearer(tenant.api_key))).json()
    assert [loc["code"] for loc in listed] == ["WH-1"]


async def test_query_parameters_and_bodies_that_are_not_objects_are_told_plainly(client: AsyncClient) -> None:
    tenant = await create_tenant()
    errors = field_errors(await client.get(f"{API}/orders", params={"limit": "many"},
                                           headers=bearer(tenant.api_key)))
    assert errors == {"limit": "Enter a whole number."}
    errors = field_errors(await client.post(f"{API}/locations", json=[1, 2], headers=bearer(tenant.api_key)))
    assert list(errors) == ["body"]


GOOD_LOCATION = {"code": "WH-LYON", "name": "Lyon warehouse", "kind": "warehouse", "country": "FR",
                 "timezone": "Europe/Paris", "address_line1": "5 rue de la République", "postcode": "69002",
                 "city": "Lyon", "priority": "100", "ships_to_customers": "on"}


async def test_the_location_form_shows_five_mistakes_at_once_each_beside_its_field(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    form = dict(GOOD_LOCATION, code="bad code!", name="", country="XX", latitude="95", longitude="2.35",
                shipping_cost="five euros")
    page = await post_form(client, "/app/locations/new", form)
    assert page.status_code == 422
    shown = form_field_errors(page.text)
    assert shown == {
        "code": "Use letters, digits, dots, dashes or slashes, starting with a letter or digit.",
        "name": "This field is required.",
        "country": "Unknown country 'XX': use a two-letter country code such as FR or US.",
        "latitude": "Enter a number from -90 to 90.",
        "shipping_cost": "Enter an amount such as 5,90 or 5,90 €.",
    }
    assert "Correct the 5 fields marked below." in page.text
    for message in shown.values():
        assert not INTERNALS.search(message)
    assert 'value="bad code!"' in page.text and 'value="five euros"' in page.text  # what was typed, to correct
    # The browser checks what the server checks: the same pattern, bounds and words.
    assert 'pattern="[A-Za-z0-9][A-Za-z0-9._\\-\\/]*"' in page.text
    assert 'min="-90" max="90"' in page.text
    assert 'data-msg-range="Enter a number from -90 to 90."' in page.text
    listed = await client.get(f"{API}/locations", headers=bearer(tenant.api_key))
    assert listed.json() == []


async def test_opening_hours_and_numbers_are_told_per_field(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    form = dict(GOOD_LOCATION, open_mon="10:00", close_tue="19:00", open_wed="19:00", close_wed="09:00",
                daily_capacity="²", priority="-5000000", latitude="45.76", timezone="Mars/Olympus_Mons")
    page = await post_form(client, "/app/locations/new", form)
    assert form_field_errors(page.text) == {
        "close_mon": "Give the closing time too, or neither.",
        "open_tue": "Give the opening time too, or neither.",
        "close_wed": "Closing must be later than opening.",
        "daily_capacity": "Enter a whole number such as 500, or leave it empty for no limit.",
        "priority": "Enter a whole number from -1,000,000 to 1,000,000.",
        "longitude": "Give the longitude too, or leave both empty to find them from the city.",
        "timezone": "Unknown time zone 'Mars/Olympus_Mons': use a region and a city, such as Europe/Paris.",
    }


def input_tag(html: str, name: str) -> str:
    found = re.search(rf'<input[^>]* name="{re.escape(name)}"[^>]*>', html)
    assert found, name
    return unescape(found.group(0))


async def test_numbers_that_are_none_come_back_as_typed_and_the_browser_checks_what_the_server_does(
        client: AsyncClient) -> None:
    """A longitude, a capacity or a priority that is no number is shown again as typed, beside its
    message (number fields would have sent nothing and come back empty); every rule the server applies
    to the form is carried to the browser in the server's words."""
    tenant = await create_tenant(country="FR", currency="EUR")
    await login(client, tenant.email)
    form = dict(GOOD_LOCATION, latitude="45.76", longitude="abc", daily_capacity="²", priority="1e3",
                shipping_cost="abc", timezone="Europe/Pariss", open_mon="18:00", close_mon="09:00")
    page = await post_form(client, "/app/locations/new", form)
    assert form_field_errors(page.text) == {
        "longitude": "Enter a number such as 2.35.",
        "daily_capacity": "Enter a whole number such as 500, or leave it empty for no limit.",
        "priority": "Enter a whole number such as 100.",
        "shipping_cost": "Enter an amount such as 5,90 or 5,90 €.",
        "timezone": "Unknown time zone 'Europe/Pariss': use a region and a city, such as Europe/Paris.",
        "close_mon": "Closing must be later than opening.",
    }
    for name, typed in (("longitude", "abc"), ("daily_capacity", "²"), ("priority", "1e3"), ("shipping_cost", "abc"),
                        ("timezone", "Europe/Pariss"), ("open_mon", "18:00"), ("close_mon", "09:00")):
        tag = input_tag(page.text, name)
        assert f'value="{typed}"' in tag, tag
        assert 'type="number"' not in tag, tag  # text, so that what was typed is sent and shown again
    longitude = input_tag(page.text, "longitude")
    assert 'inputmode="decimal"' in longitude and 'min="-180" max="180"' in longitude
    assert 'data-msg-pattern="Enter a number such as 2.35."' in longitude
    assert 'data-msg-range="Enter a number from -180 to 180."' in longitude
    assert 'data-msg-pattern="Enter an amount such as 5,90 or 5,90\xa0€."' in input_tag(page.text, "shipping_cost")
    assert ("data-msg-list=\"Unknown time zone '{value}': use a region and a city, such as Europe/Paris.\""
            in input_tag(page.text, "timezone"))
    assert ("data-msg-list=\"Unknown country '{value}': use a two-letter country code such as FR or US.\""
            in input_tag(page.text, "country"))
    assert 'data-after="open_mon" data-msg-after="Closing must be later than opening."' in input_tag(
        page.text, "close_mon")
    assert 'data-msg-pair="Give the opening time too, or neither."' in input_tag(page.text, "open_mon")
    # The amount's pattern lets through what the server reads, and stops what it never would.
    from inventory.location_form import amount_html_pattern

    pattern = re.compile(amount_html_pattern("EUR", "fr_FR"))
    for typed in ("5,90", "5,90 €", "€5.90", "1 234,56", "59 EUR", "7.50"):
        assert pattern.fullmatch(typed), typed
    for typed in ("abc", "five euros", "5,90 $", ""):
        assert not pattern.fullmatch(typed), typed


async def test_a_location_saved_without_coordinates_is_placed_from_its_city(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    saved = await post_form(client, "/app/locations/new", dict(GOOD_LOCATION, shipping_cost="5,90 €"))
    assert saved.status_code == 303, saved.text[:500]
    location = (await client.get(f"{API}/locations", headers=bearer(tenant.api_key))).json()[0]
    assert (round(location["latitude"], 2), round(location["longitude"], 2)) == (45.75, 4.85)
    assert location["shipping_cost_minor"] == 590
    assert saved.headers["location"] == f"/app/locations/{location['id']}?done=location_saved"
    page = await client.get(saved.headers["location"])
    assert "Placed at Lyon, FR (45.75, 4.85) — correct the coordinates if needed." in page.text
    assert 'name="latitude"' in page.text and 'value="45.74906"' in page.text
    assert 'value="5,90"' in page.text  # the amount as the company writes it, not 590 cents
    again = await client.get(saved.headers["location"])
    assert "Placed at" not in again.text  # told once

    # Typed coordinates are kept as they are, and the list is where the form goes back to.
    kept = await post_form(client, f"/app/locations/{location['id']}",
                           dict(GOOD_LOCATION, latitude="45.7640", longitude="4,8357", shipping_cost="7.50"))
    assert kept.status_code == 303 and kept.headers["location"].startswith("/app/locations?")
    location = (await client.get(f"{API}/locations/{location['id']}", headers=bearer(tenant.api_key))).json()
    assert (location["latitude"], location["longitude"], location["shipping_cost_minor"]) == (45.764, 4.8357, 750)


async def test_a_city_that_cannot_be_found_is_told_beside_the_city_and_the_location_is_kept(
        client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    saved = await post_form(client, "/app/locations/new", dict(GOOD_LOCATION, city="Xyzzyville-sur-Mer"))
    assert saved.status_code == 303
    location = (await client.get(f"{API}/locations", headers=bearer(tenant.api_key))).json()[0]
    assert location["latitude"] is None and location["longitude"] is None
    page = await client.get(saved.headers["location"])
    note = re.search(r'<small id="city-hint" class="field-note">(.*?)</small>', page.text, re.S)
    assert note and "We couldn't find “Xyzzyville-sur-Mer” in FR" in unescape(note.group(1))


async def test_find_coordinates_fills_the_fields_without_saving(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    found = await client.get("/app/locations/geocode", params={"city": "St Etienne", "country": "fr",
                                                                "postcode": "42000"}, headers={"HX-Request": "true"})
    assert found.status_code == 200
    assert 'value="45.43389"' in found.text and 'value="4.39"' in found.text
    assert "Found Saint-Étienne, FR (45.43, 4.39): check the coordinates, then save." in found.text
    unknown = await client.get("/app/locations/geocode", params={"city": "Nowhere At All", "country": "FR"})
    assert "We couldn't find “Nowhere At All” in FR" in unescape(unknown.text) and 'value=""' in unknown.text
    assert "Enter the city first" in (await client.get("/app/locations/geocode")).text
    assert (await client.get(f"{API}/locations", headers=bearer(tenant.api_key))).json() == []


async def test_signup_tells_every_mistake_at_once(client: AsyncClient) -> None:
    await client.get("/signup")
    page = await post_form(client, "/signup", {"company": "", "name": "", "email": "camille@", "password": "short",
                                               "country": "", "currency": "", "timezone": ""})
    assert page.status_code == 422
    shown = form_field_errors(page.text)
    assert set(shown) == {"company", "name", "email", "password", "country", "currency", "timezone"}, shown
    assert shown["company"] == "Enter your company's name."
    assert shown["password"] == "Use at least 10 characters."
    assert (shown["country"], shown["currency"], shown["timezone"]) == (
        "Choose a country.", "Choose a currency.", "Choose a time zone.")
    assert shown["email"].startswith("This is not a valid email address")
    assert "Correct the 7 fields marked below." in page.text
    # The browser is told the same rules, and the same words for the ones it can check itself.
    assert 'maxlength="200" data-msg-required="Enter your company\'s name."' in unescape(page.text)
    assert 'minlength="10"' in page.text and "data-check" in page.text


async def test_settings_forms_tell_every_mistake_at_once(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    keys = await post_form(client, "/app/settings/api-keys", {"name": " ", "role": "wizard"})
    assert keys.status_code == 422
    assert form_field_errors(keys.text) == {"name": "Enter a name for the key.",
                                            "role": "Choose one of: admin, read_only, order_intake, feed_intake."}
    invited = await post_form(client, "/app/settings/team/invitations", {"email": "sam@", "role": "emperor"})
    assert invited.status_code == 422
    assert set(form_field_errors(invited.text)) == {"email", "role"}
    hook = await post_form(client, "/app/settings/webhooks", {"url": "ftp:/x", "description": "d" * 201})
    assert hook.status_code == 422
    assert form_field_errors(hook.text) == {"url": "Enter a web address such as https://example.com/oms-events.",
                                            "description": "Use at most 200 characters."}
    assert 'value="ftp:/x"' in hook.text
    stripe = await post_form(client, "/app/settings/payments", {"secret_key": "sk_" + "x" * 400})
    assert form_field_errors(stripe.text) == {
        "secret_key": "Paste a Stripe secret or restricted key (it starts with sk_ or rk_)."}
    window = await post_form(client, "/app/settings/orders", {"pickup_window_days": "a week"})
    assert form_field_errors(window.text) == {"pickup_window_days": "Give a whole number of days from 1 to 60."}


async def test_path_parameters_out_of_range_are_told_plainly(client: AsyncClient) -> None:
    tenant = await create_tenant()
    response = await client.get(f"{API}/rule-sets/routing/versions/2534450111657", headers=bearer(tenant.api_key))
    assert field_errors(response) == {"number": "Enter a whole number from 1 to 2,147,483,647."}
    response = await client.get(f"{API}/orders", params={"limit": "0"}, headers=bearer(tenant.api_key))
    assert field_errors(response) == {"limit": "Enter a whole number from 1 to 1,000."}


async def test_a_body_that_is_not_json_or_missing_is_told_plainly(client: AsyncClient) -> None:
    tenant = await create_tenant()
    headers = {**bearer(tenant.api_key), "Content-Type": "application/json"}
    truncated = await client.post(f"{API}/locations", content=b'{"code": ', headers=headers)
    assert truncated.status_code == 400
    assert truncated.json()["detail"] == "The body is not complete JSON: it ends too early."
    garbled = await client.post(f"{API}/locations", content=b"nope", headers=headers)
    assert garbled.json()["title"] == "Invalid JSON" and "at character 5" in garbled.json()["detail"]
    empty = await client.post(f"{API}/locations", content=b"", headers=headers)
    assert field_errors(empty) == {"body": "Send the request's data as a JSON object in its body."}
