"""A form with eight mistakes, in the real Chromium against the real web server: the browser marks
them all at once, in the server's words, and sends nothing; the server, asked anyway, shows the same
eight at once, each beside its field, in plain words, with what was typed still in the fields;
corrected, the location is saved, its shipping cost typed as people write amounts, and its
coordinates found from its city."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from browser_pages import new_company, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "forms should speak plainly"
TIMEZONE = "Europe/Paris"
GEOCODE_TIMEOUT_MS = 60_000  # the first lookup reads the shipped places once

CODE_WORDS = "Use letters, digits, dots, dashes or slashes, starting with a letter or digit."
SERVER_WORDS = {
    "code": CODE_WORDS,
    "name": "This field is required.",
    "country": "Unknown country 'XX': use a two-letter country code such as FR or US.",
    "latitude": "Enter a number from -90 to 90.",
    "longitude": "Enter a number such as 2.35.",
    "timezone": "Unknown time zone 'Europe/Pariss': use a region and a city, such as Europe/Paris.",
    "shipping_cost": "Enter an amount such as 5,90 or 5,90\xa0€.",  # the locale's own space
    "close_mon": "Closing must be later than opening.",
}
INTERNALS = re.compile(r"Expected `|`\$|\$\.|regex|msgspec")

expect.set_options(timeout=10_000)


def shown_errors(page: Page) -> dict[str, dict[str, Any]]:
    """Each message shown in the form: its text, the field it sits beside (the input in the same
    block) and whether that field points at it for screen readers."""
    notes = page.locator("form.location-form .field-error")
    found: list[dict[str, Any]] = notes.evaluate_all("""notes => notes.map(n => {
        const field = n.closest('.field, td').querySelector('input, select');
        return {id: n.id, text: n.textContent.trim(), field: field ? field.name : null,
                described: field ? (field.getAttribute('aria-describedby') || '').split(' ').includes(n.id) : false,
                invalid: field ? field.getAttribute('aria-invalid') : null,
                visible: n.offsetParent !== null};
    })""")
    return {note["field"]: note for note in found}


def test_eight_mistakes_are_shown_at_once_then_the_location_is_saved(live_server: Any, new_context: Any,
                                                                    journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("forms-")
    company = new_company("Maison Lefèvre", "lea", PASSWORD, owner="Léa Lefèvre", timezone=TIMEZONE)
    page = signed_in_page(new_context, journey, "owner", base, company.email, PASSWORD, timezone_id=TIMEZONE)

    page.goto("/app/locations/new")
    expect(page.get_by_role("heading", name="New location", level=1)).to_be_visible()
    expect(page.get_by_label("Country", exact=True)).to_have_value("FR")  # the company's, as a value
    # Placeholders are hints, and look like hints (lighter, italic), not like values.
    placeholder = page.get_by_label("Code", exact=True).get_attribute("placeholder") or ""
    assert placeholder.startswith("e.g. ")
    style = page.get_by_label("Code", exact=True).evaluate(
        "el => { const s = getComputedStyle(el, '::placeholder'); return [s.fontStyle, s.color]; }")
    assert style[0] == "italic", style

    # 1. Eight mistakes, as a retailer makes them: the browser tells every one at once, in the
    #    server's words, beside its field, and nothing is sent.
    page.get_by_label("Code", exact=True).fill("bad code!")
    page.get_by_label("Name", exact=True).fill("")
    page.get_by_label("Country", exact=True).fill("XX")
    page.get_by_label("Latitude", exact=True).fill("95")
    page.get_by_label("Longitude", exact=True).fill("abc")
    page.get_by_label("Time zone").fill("Europe/Pariss")
    page.get_by_label("Shipping cost (EUR)").fill("abc")
    page.get_by_label("mon opens").fill("18:00")
    page.get_by_label("mon closes").fill("09:00")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.method) if request.method == "POST" else None)
    page.get_by_role("button", name="Save location").click()
    expect(page.locator("form.location-form .field-error")).to_have_count(len(SERVER_WORDS))
    client_side = shown_errors(page)
    assert {name: note["text"] for name, note in client_side.items()} == SERVER_WORDS
    for name, note in client_side.items():
        assert note["described"] and note["invalid"] == "true" and note["visible"], (name, note)
    expect(page.get_by_label("Code", exact=True)).to_be_focused()
    assert requests == []
    journey.shot(page, "browser-tells-all-eight")
    # A time typed without its pair is told too, and a corrected one loses its mark at once.
    page.get_by_label("tue opens").fill("09:00")
    page.get_by_role("button", name="Save location").click()
    expect(page.locator("#close_tue-error")).to_have_text("Give the closing time too, or neither.")
    page.get_by_label("tue opens").fill("")
    expect(page.locator("#close_tue-error")).to_have_count(0)
    expect(page.get_by_label("tue closes")).not_to_have_attribute("aria-invalid", "true")
    assert requests == []

    # 2. The server is the judge: asked without the browser's checks, it tells the same eight at once,
    #    with what was typed still in the fields (a longitude that is no number included).
    page.evaluate("document.querySelector('form.location-form').removeAttribute('data-check')")
    with page.expect_response(lambda r: r.url == f"{base}/app/locations/new" and r.request.method == "POST") as sent:
        page.get_by_role("button", name="Save location").click()
    assert sent.value.status == 422
    expect(page.locator(".error-summary")).to_have_text("Correct the 8 fields marked below. Nothing was saved.")
    expect(page.locator("form.location-form .field-error")).to_have_count(len(SERVER_WORDS))
    server_side = shown_errors(page)
    assert {name: note["text"] for name, note in server_side.items()} == SERVER_WORDS
    for name, note in server_side.items():
        assert note["described"] and note["invalid"] == "true" and note["visible"], (name, note)
        assert not INTERNALS.search(note["text"]), note
    expect(page.get_by_label("Code", exact=True)).to_be_focused()  # the first field to correct
    for label, typed in (("Code", "bad code!"), ("Country", "XX"), ("Latitude", "95"), ("Longitude", "abc"),
                         ("Time zone", "Europe/Pariss"), ("Shipping cost (EUR)", "abc"), ("mon opens", "18:00"),
                         ("mon closes", "09:00")):
        expect(page.get_by_label(label, exact=True)).to_have_value(typed)  # kept, to correct
    journey.shot(page, "server-tells-the-same-eight")

    # 3. Corrected; the coordinates found from the city without typing them.
    page.get_by_label("Code", exact=True).fill("WH-LYON")
    page.get_by_label("Name", exact=True).fill("Lyon warehouse")
    page.get_by_label("Country", exact=True).fill("fr")  # read as FR, in the browser as on the server
    page.get_by_label("Time zone").fill(TIMEZONE)
    page.get_by_label("mon closes").fill("19:00")
    page.get_by_label("Street", exact=True).fill("5 rue de la République")
    page.get_by_label("Postcode", exact=True).fill("69002")
    page.get_by_label("City", exact=True).fill("Lyon")
    page.get_by_label("Latitude", exact=True).fill("")
    page.get_by_label("Longitude", exact=True).fill("")
    page.get_by_label("Shipping cost (EUR)").fill("5,90 €")
    page.get_by_role("button", name="Find coordinates").click()
    expect(page.locator("#coordinates .field-note")).to_have_text(
        "Found Lyon, FR (45.75, 4.85): check the coordinates, then save.", timeout=GEOCODE_TIMEOUT_MS)
    expect(page.get_by_label("Latitude", exact=True)).to_have_value("45.74906")
    expect(page.get_by_label("Longitude", exact=True)).to_have_value("4.84789")
    journey.shot(page, "coordinates-found")

    # Left empty, they are found when saving too, and shown for correction.
    page.get_by_label("Latitude", exact=True).fill("")
    page.get_by_label("Longitude", exact=True).fill("")
    page.get_by_role("button", name="Save location").click()
    expect(page).to_have_url(re.compile(re.escape(f"{base}/app/locations/") + r"[0-9a-f-]{36}\?done=location_saved$"),
                             timeout=GEOCODE_TIMEOUT_MS)
    expect(page.get_by_role("status")).to_have_text("Location saved.")
    expect(page.locator("#coordinates .field-note")).to_have_text(
        "Placed at Lyon, FR (45.75, 4.85) — correct the coordinates if needed.")
    expect(page.get_by_label("Latitude", exact=True)).to_have_value("45.74906")
    expect(page.get_by_label("Longitude", exact=True)).to_have_value("4.84789")
    expect(page.get_by_label("Shipping cost (EUR)")).to_have_value("5,90")  # euros as the company writes them
    expect(page.locator("form.location-form .field-error")).to_have_count(0)
    journey.shot(page, "saved-and-placed")

    assert journey.page_errors == [], journey.page_errors
    assert not journey.failures, ("\n\n".join(journey.failures) + "\n\n" + live_server.log_tail(30))
