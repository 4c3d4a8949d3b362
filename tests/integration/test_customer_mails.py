"""Mails customers can read: in their language (French and English catalogs), with the channel's
order number, the pickup store's name, address and opening hours, the parcel's tracking link,
the company's name and colour; a partial cancellation told with what went, its refund and what
still comes; HTML with a plain-text alternative; the company's own subjects and introductions per
language (Settings → Notifications, with a preview and a test sent to oneself, marked as a test);
and the public address of links derived from the port."""

from __future__ import annotations

import re
import uuid
from typing import Any

from httpx import AsyncClient
from test_orders import act_ok, by_priority, capture, get_order, order_body, publish_rules

from factories import create_tenant, csrf_headers, login, mail_to, post_form, run_outbox_inline, unique
from inventory_factories import make_locations, product_body, stock_up

API = "/api/v1"
SETTINGS = "/app/settings/notifications"
HOURS = {"mon": [["09:00", "19:00"]], "tue": [["09:00", "19:00"]], "wed": [["09:00", "19:00"]],
         "thu": [["09:00", "19:00"]], "fri": [["09:00", "19:00"]], "sat": [["10:00", "12:30"], ["14:00", "18:00"]]}
FRENCH_DAYS = "(lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)"
TO, TIMES, APOSTROPHE = "\u2013", "\u00d7", "\u2019"  # the en dash, the multiplication sign, the apostrophe


def plain(text: str) -> str:
    """The text with its no-break spaces as plain ones (French puts one before a colon, and in
    amounts), so assertions read as the customer does."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


async def shop(client: AsyncClient, key: str) -> dict[str, str]:
    """A warehouse that ships, a Paris store that offers click & collect (with opening hours),
    and a product in stock at both."""
    t = uuid.uuid4().hex[:6].upper()
    c = {"wh": f"WH-{t}", "store": f"ST-{t}", "sku": f"SKU-{t}"}
    await make_locations(
        client, key,
        {"code": c["wh"], "name": "Lyon DC", "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris",
         "address_line1": "3 quai Perrache", "city": "Lyon", "postcode": "69002", "ships_to_customers": True,
         "priority": 10},
        {"code": c["store"], "name": "Paris Opéra", "kind": "store", "country": "FR", "timezone": "Europe/Paris",
         "address_line1": "12 boulevard des Capucines", "city": "Paris", "postcode": "75009",
         "click_and_collect": True, "opening_hours": HOURS, "priority": 20},
    )
    response = await client.post(f"{API}/products/import", headers={"Authorization": f"Bearer {key}"},
                                 json={"products": [product_body(c["sku"], name="Bottines en cuir", price_minor=2500)]})
    assert response.status_code == 200, response.text
    await stock_up(client, key, {(c["sku"], c["wh"]): 10, (c["sku"], c["store"]): 10})
    return c


async def only_mail(tenant_id: uuid.UUID, address: str, kind: str) -> Any:
    found = [m for m in await mail_to(tenant_id, address) if m.kind == kind]
    assert len(found) == 1, [(m.kind, m.subject) for m in await mail_to(tenant_id, address)]
    return found[0]


async def htmx_post(client: AsyncClient, url: str, data: dict[str, str]) -> Any:
    return await client.post(url, data=data, headers={**csrf_headers(client), "HX-Request": "true"})


async def signed_in_owner(client: AsyncClient) -> Any:
    tenant = await create_tenant(name=unique("Maison"))
    await login(client, tenant.email)
    return tenant


# --- the customer's language --------------------------------------------------------------------


async def test_french_order_gets_a_french_confirmation_with_the_channels_number(client) -> None:
    tenant = await create_tenant(name=unique("Maison Lenoir"))
    c = await shop(client, tenant.api_key)
    email = f"{unique('camille')}@example.test"
    body = order_body((c["sku"], 2, 2500), email=email, external_number="WEB-5531", shipping=490, language="fr")
    order = await capture(client, tenant.api_key, body)
    assert order["language"] == "fr"

    mail = await only_mail(tenant.tenant_id, email, "order.confirmation")
    assert mail.subject == "Nous avons bien reçu votre commande WEB-5531"
    text = plain(mail.body_text)
    assert text.startswith("Bonjour Bea Buyer,")
    assert f"Merci pour votre commande chez {tenant.name}." in text
    assert "Numéro de commande : WEB-5531" in text
    assert order["number"] not in text  # the customer knows the channel's number, not ours
    assert f"- Bottines en cuir {TIMES} 2 : 50,00 €" in text
    assert "Livraison : 4,90 €" in text and "Total : 54,90 €" in text
    assert "ADRESSE DE LIVRAISON" in text and "1 rue de Rivoli" in text and "75001 Paris" in text
    assert mail.meta["language"] == "fr"
    html = plain(mail.body_html)
    assert '<html lang="fr">' in html
    assert tenant.name in html and "background:#1d4ed8" in html  # the company's name on its colour
    assert f"Bottines en cuir {TIMES} 2" in html and "54,90 €" in html


async def test_a_language_without_mails_falls_back_to_the_companys_then_english(client) -> None:
    tenant = await signed_in_owner(client)  # a French company: its mails start in French
    c = await shop(client, tenant.api_key)
    german = f"{unique('jonas')}@example.test"
    order = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=german, language="de-AT"))
    assert order["language"] == "de"  # kept: the mails fall back while there is no German
    assert (await only_mail(tenant.tenant_id, german, "order.confirmation")).subject == \
        f"Nous avons bien reçu votre commande {order['number']}"

    saved = await post_form(client, f"{SETTINGS}/look", {"language": "en", "brand_colour": "#0F766E"})
    assert saved.status_code == 303, saved.text
    again = f"{unique('jonas')}@example.test"
    order = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=again, language="de"))
    mail = await only_mail(tenant.tenant_id, again, "order.confirmation")
    assert mail.subject == f"We have your order {order['number']}"
    assert "background:#0f766e" in mail.body_html
    none_said = f"{unique('lea')}@example.test"
    await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=none_said))
    assert (await only_mail(tenant.tenant_id, none_said, "order.confirmation")).meta["language"] == "en"
    french = f"{unique('ann')}@example.test"
    await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=french, language="fr-BE"))
    assert (await only_mail(tenant.tenant_id, french, "order.confirmation")).subject.startswith(
        "Nous avons bien reçu votre commande")


async def test_an_order_with_a_language_that_is_not_one_is_refused(client) -> None:
    tenant = await create_tenant()
    c = await shop(client, tenant.api_key)
    response = await client.post(f"{API}/orders", json=order_body((c["sku"], 1, 2500), language="français"),
                                 headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert response.status_code == 422, response.text
    assert {e["field"]: e["message"] for e in response.json()["errors"]}["language"] == \
        "Give the customer's language as a two-letter code, such as fr or en."


async def test_ready_for_pickup_in_french_names_the_store_its_address_hours_and_deadline(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await shop(client, key)
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    email = f"{unique('marie')}@example.test"
    created = await capture(client, key, order_body((c["sku"], 1, 2500), email=email, pickup=c["store"],
                                                    external_number="MAG-0042", language="fr-FR"))
    await run_outbox_inline(tenant.tenant_id)
    [fulfilment] = (await get_order(client, key, created["id"]))["fulfilments"]
    await act_ok(client, key, fulfilment["id"], "accept", "pick", "pack", "ready")

    mail = await only_mail(tenant.tenant_id, email, "order.ready_for_pickup")
    assert mail.subject == "Votre commande MAG-0042 est prête à être retirée"
    text = plain(mail.body_text)
    assert "Votre commande vous attend au magasin Paris Opéra." in text
    assert "OÙ LA RETIRER\nParis Opéra\n12 boulevard des Capucines\n75009 Paris\nFrance" in text
    assert (f"HORAIRES D{APOSTROPHE}OUVERTURE\nLundi {TO} vendredi : 09:00 {TO} 19:00\n"
            f"Samedi : 10:00 {TO} 12:30, 14:00 {TO} 18:00\nDimanche : Fermé") in text
    assert re.search(rf"Merci de la retirer avant le {FRENCH_DAYS} \d{{1,2}} \w+ \d{{4}} à \d{{2}}:\d{{2}}\.", text)
    assert c["store"] not in text  # the store's internal code means nothing to a customer
    html = plain(mail.body_html)
    assert "<strong>Paris Opéra</strong><br>12 boulevard des Capucines<br>75009 Paris" in html
    assert f"Lundi {TO} vendredi" in html


async def test_shipped_mail_gives_the_carrier_and_the_tracking_link(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await shop(client, key)
    await publish_rules(client, key, by_priority())
    email = f"{unique('hugo')}@example.test"
    created = await capture(client, key, order_body((c["sku"], 1, 2500), email=email, language="fr"))
    await run_outbox_inline(tenant.tenant_id)
    [fulfilment] = (await get_order(client, key, created["id"]))["fulfilments"]
    await act_ok(client, key, fulfilment["id"], "accept", "pick", "pack")
    await act_ok(client, key, fulfilment["id"], "ship", carrier="colissimo", tracking_number="6A12345678901")

    mail = await only_mail(tenant.tenant_id, email, "order.shipped")
    assert mail.subject == f"Votre commande {created['number']} est en route"
    link = "https://www.laposte.fr/outils/suivre-vos-envois?code=6A12345678901"
    text = plain(mail.body_text)
    assert "Transporteur : Colissimo" in text and "Numéro de suivi : 6A12345678901" in text
    assert f"Suivre votre colis : {link}" in text
    assert f'<a href="{link}"' in mail.body_html and "Suivre votre colis</a>" in mail.body_html

    await act_ok(client, key, fulfilment["id"], "deliver")
    delivered = await only_mail(tenant.tenant_id, email, "order.delivered")
    assert delivered.subject == f"Votre commande {created['number']} a été livrée"
    assert "Votre colis a été livré." in delivered.body_text and f"Suivre votre colis : {link}" in \
        plain(delivered.body_text)


async def test_cancelled_order_is_told_in_french(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await shop(client, key)
    await publish_rules(client, key, by_priority())
    email = f"{unique('paul')}@example.test"
    created = await capture(client, key, order_body((c["sku"], 1, 2500), email=email, language="fr"))
    await run_outbox_inline(tenant.tenant_id)
    response = await client.post(f"{API}/orders/{created['id']}/cancel", json={"reason": "changed mind"},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    mail = await only_mail(tenant.tenant_id, email, "order.cancelled")
    assert mail.subject == f"Votre commande {created['number']} a été annulée"
    assert "Votre commande a été annulée." in mail.body_text
    assert "remboursement" not in mail.body_text  # the payment was only authorised: nothing to give back
    assert "changed mind" not in mail.body_text  # the company's reason is its own


async def two_warehouses(client: AsyncClient, key: str) -> dict[str, str]:
    """One pair of boots in Lyon, socks in Lille (so an order of both leaves in two parcels), and
    rules that ship from warehouses, splitting when they must."""
    t = uuid.uuid4().hex[:6].upper()
    c = {"lyon": f"WH-{t}", "lille": f"WH2-{t}", "boots": f"BOOT-{t}", "socks": f"SOCK-{t}"}
    await make_locations(
        client, key,
        {"code": c["lyon"], "name": "Lyon DC", "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris",
         "city": "Lyon", "postcode": "69002", "ships_to_customers": True, "priority": 10},
        {"code": c["lille"], "name": "Lille DC", "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris",
         "city": "Lille", "postcode": "59000", "ships_to_customers": True, "priority": 30},
    )
    response = await client.post(f"{API}/products/import", headers={"Authorization": f"Bearer {key}"}, json={
        "products": [product_body(c["boots"], name="Bottines en cuir", price_minor=2500),
                     product_body(c["socks"], name="Chaussettes en mérinos", price_minor=1200)]})
    assert response.status_code == 200, response.text
    await stock_up(client, key, {(c["boots"], c["lyon"]): 1, (c["socks"], c["lille"]): 5})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    return c


def section(text: str, heading: str) -> str:
    """The lines under a heading of a text mail, up to the next blank line."""
    return text.split(heading + "\n", 1)[1].split("\n\n", 1)[0]


async def test_a_partial_cancellation_tells_what_went_its_refund_and_what_still_comes(client) -> None:
    tenant = await signed_in_owner(client)  # a French retailer, cancelling from the order page
    key = tenant.api_key
    c = await two_warehouses(client, key)
    email = f"{unique('ines')}@example.test"
    created = await capture(client, key, order_body((c["boots"], 1, 2500), (c["socks"], 3, 1200), email=email,
                                                    external_number="WEB-8812", shipping=490, language="fr"))
    await run_outbox_inline(tenant.tenant_id)
    parcels = {f["location"]: f for f in (await get_order(client, key, created["id"]))["fulfilments"]}
    # The boots leave first: the whole payment (65,90 €) is captured with them.
    await act_ok(client, key, parcels[c["lyon"]]["id"], "accept", "pick", "pack", "ship")

    done = await post_form(client, f"/app/orders/{created['id']}/cancel", {"cancel_line_2": "2",
                                                                           "reason": "Rupture à Lille"})
    assert done.status_code == 303, done.text
    mail = await only_mail(tenant.tenant_id, email, "order.lines_cancelled")
    assert mail.subject == "Une partie de votre commande WEB-8812 a été annulée"
    assert mail.meta["language"] == "fr"
    text = plain(mail.body_text)
    assert text.startswith("Bonjour Bea Buyer,")
    assert "Une partie de votre commande a été annulée. Voici ce qui a été annulé, et ce qui reste à venir." in text
    assert section(text, "ARTICLES ANNULÉS") == f"- Chaussettes en mérinos {TIMES} 2 : 24,00 €"
    assert "Un remboursement de 24,00 € est en cours sur votre moyen de paiement." in text
    # The boots have left already: what still comes is the last pair of socks.
    assert section(text, "RESTE À VENIR") == f"- Chaussettes en mérinos {TIMES} 1"
    assert f"Votre commande s{APOSTROPHE}élève désormais à 41,90 €." in text
    assert "Rupture à Lille" not in text  # the company's reason is its own
    html = plain(mail.body_html)
    assert "Articles annulés</h2>" in html and f"Chaussettes en mérinos {TIMES} 2</td>" in html
    assert "24,00 €" in html and "Reste à venir</h2>" in html
    assert not [m for m in await mail_to(tenant.tenant_id, email) if m.kind == "order.cancelled"]

    # The last pair too: the mail tells of this refund alone, and nothing is left to come.
    response = await client.post(f"{API}/orders/{created['id']}/cancel", json={"reason": "Rupture"},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert response.json()["refunded_minor"] == 3600
    last, _ = [m for m in await mail_to(tenant.tenant_id, email) if m.kind == "order.lines_cancelled"]  # newest first
    text = plain(last.body_text)
    assert section(text, "ARTICLES ANNULÉS") == f"- Chaussettes en mérinos {TIMES} 1 : 12,00 €"
    assert "Un remboursement de 12,00 € est en cours" in text
    assert "RESTE À VENIR" not in text and f"Votre commande s{APOSTROPHE}élève désormais à 29,90 €." in text


async def test_units_cancelled_before_the_capture_are_not_charged_in_the_companys_words(client) -> None:
    tenant = await signed_in_owner(client)
    key = tenant.api_key
    c = await two_warehouses(client, key)
    saved = await post_form(client, f"{SETTINGS}/lines_cancelled/en", {
        "action": "save", "subject": "A change to order {order_number}",
        "intro": "{customer_name}, we could not send everything you asked {company} for."})
    assert saved.status_code == 303, saved.text
    email = f"{unique('liam')}@example.test"
    created = await capture(client, key, order_body((c["boots"], 1, 2500), (c["socks"], 2, 1200), email=email,
                                                    language="en"))
    await run_outbox_inline(tenant.tenant_id)
    response = await client.post(f"{API}/orders/{created['id']}/cancel",
                                 json={"lines": [{"line_no": 2, "quantity": 1}]},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text

    mail = await only_mail(tenant.tenant_id, email, "order.lines_cancelled")
    assert mail.subject == f"A change to order {created['number']}"
    text = plain(mail.body_text)
    assert f"Bea Buyer, we could not send everything you asked {tenant.name} for." in text
    assert section(text, "CANCELLED ITEMS") == f"- Chaussettes en mérinos {TIMES} 1: 12,00 €"
    # Only authorised so far: nothing to give back, the customer is simply not charged for it.
    assert "You will not be charged for them." in text and "refund" not in text.lower()
    assert section(text, "STILL COMING") == f"- Bottines en cuir {TIMES} 1\n- Chaussettes en mérinos {TIMES} 1"
    assert "Your order now comes to 37,00 €." in text


async def test_partly_cancelled_is_edited_like_the_other_mails(client) -> None:
    await signed_in_owner(client)
    listing = await client.get(SETTINGS)
    assert "Partly cancelled" in listing.text
    assert 'href="/app/settings/notifications?kind=lines_cancelled&amp;language=fr#editor"' in listing.text
    page = await client.get(SETTINGS, params={"kind": "lines_cancelled", "language": "fr"})
    assert page.status_code == 200
    assert 'value="Une partie de votre commande {order_number} a été annulée"' in page.text
    assert "<code>{refund}</code>" in page.text
    preview = await post_form(client, f"{SETTINGS}/lines_cancelled/fr", {
        "action": "preview", "subject": "Commande {order_number} : {refund} remboursés", "intro": "Désolés !"})
    assert preview.status_code == 200
    shown = plain(preview.text)
    assert "Commande WEB-100234 : 12,00 € remboursés" in shown
    assert "Articles annulés" in shown and "Reste à venir" in shown
    assert "Ceci est un test" not in shown  # the preview is the mail as customers get it


# --- safety ------------------------------------------------------------------------------------------


async def test_html_mail_escapes_what_the_customer_typed(client) -> None:
    tenant = await signed_in_owner(client)
    c = await shop(client, tenant.api_key)
    email = f"{unique('eve')}@example.test"
    body = order_body((c["sku"], 1, 2500), email=email, language="en")
    body["customer"]["name"] = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await capture(client, tenant.api_key, body)
    mail = await only_mail(tenant.tenant_id, email, "order.confirmation")
    assert "<script>" not in mail.body_html and "<img" not in mail.body_html
    assert "Hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;," in mail.body_html
    assert mail.body_text.startswith('Hello <script>alert("x")</script>')  # text is text

    shown = await client.get(f"/app/settings/mail-log/{mail.id}")
    assert shown.status_code == 200
    assert '<iframe class="mail-frame" sandbox referrerpolicy="no-referrer"' in shown.text
    assert "<script>alert" not in shown.text and "<img src=x" not in shown.text
    assert "Text version" in shown.text


# --- Settings → Notifications -------------------------------------------------------------------


async def test_company_texts_per_language_are_used_and_audited(client) -> None:
    tenant = await signed_in_owner(client)
    c = await shop(client, tenant.api_key)
    page = await client.get(SETTINGS, params={"kind": "confirmation", "language": "fr"})
    assert page.status_code == 200
    assert 'value="Nous avons bien reçu votre commande {order_number}"' in page.text  # the default, to edit

    saved = await post_form(client, f"{SETTINGS}/confirmation/fr", {
        "action": "save", "subject": "Merci {customer_name} ! Commande {order_number}",
        "intro": "Chez {company}, on prépare tout avec soin.\n\nÀ très vite !"})
    assert saved.status_code == 303, saved.text
    french = f"{unique('zoe')}@example.test"
    await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=french, external_number="W-77",
                                                     language="fr"))
    mail = await only_mail(tenant.tenant_id, french, "order.confirmation")
    assert mail.subject == "Merci Bea Buyer ! Commande W-77"
    assert f"Chez {tenant.name}, on prépare tout avec soin.\n\nÀ très vite !" in mail.body_text
    assert f"<p style=\"margin:0 0 16px;\">Chez {tenant.name}, on prépare tout avec soin.</p>" in mail.body_html
    english = f"{unique('zoe')}@example.test"
    await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=english, external_number="W-78",
                                                     language="en"))
    assert (await only_mail(tenant.tenant_id, english, "order.confirmation")).subject == "We have your order W-78"

    listing = await client.get(SETTINGS)
    assert "Your text" in listing.text
    audit = await client.get("/app/settings/audit-log")
    assert "settings.mail_text_changed" in audit.text and "Order confirmation (Français)" in audit.text

    reset = await post_form(client, f"{SETTINGS}/confirmation/fr", {"action": "reset"})
    assert reset.status_code == 303
    back = f"{unique('zoe')}@example.test"
    await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=back, external_number="W-79",
                                                     language="fr"))
    assert (await only_mail(tenant.tenant_id, back, "order.confirmation")).subject == \
        "Nous avons bien reçu votre commande W-79"


async def test_unknown_placeholders_are_refused_next_to_their_field(client) -> None:
    tenant = await signed_in_owner(client)
    refused = await post_form(client, f"{SETTINGS}/confirmation/en", {
        "action": "save", "subject": "Order {0.__class__}", "intro": "Waiting at {store"})
    assert refused.status_code == 422
    assert "{0.__class__} is not a placeholder of this mail. You can use {order_number}, {customer_name}, " \
           "{company}, {total}." in refused.text.replace("&#34;", '"')
    assert "A brace { or } is not closed" in refused.text
    assert 'value="Order {0.__class__}"' in refused.text  # what was typed stays, to correct
    store_in_confirmation = await post_form(client, f"{SETTINGS}/confirmation/en", {
        "action": "save", "subject": "Hi", "intro": "See you at {store}"})
    assert store_in_confirmation.status_code == 422
    assert "{store} is not a placeholder of this mail" in store_in_confirmation.text
    empty = await post_form(client, f"{SETTINGS}/shipped/fr", {"action": "save", "subject": " ", "intro": ""})
    assert empty.status_code == 422
    assert "Give the mail a subject" in empty.text and "Give the mail an introduction" in empty.text
    page = await client.get(SETTINGS)
    assert "Your text" not in page.text  # nothing was saved
    assert (await post_form(client, f"{SETTINGS}/nonsense/en", {"action": "save"})).status_code == 404
    assert (await post_form(client, f"{SETTINGS}/shipped/de", {"action": "save"})).status_code == 404
    assert tenant  # signed in as its owner throughout


async def test_preview_and_send_me_a_test(client) -> None:
    tenant = await signed_in_owner(client)
    form = {"subject": "En route : {order_number} via {carrier}", "intro": "Bonne nouvelle {customer_name} !"}
    preview = await post_form(client, f"{SETTINGS}/shipped/fr", {"action": "preview", **form})
    assert preview.status_code == 200
    assert "<h1>Notifications</h1>" in preview.text  # the whole page, without JavaScript
    assert "En route : WEB-100234 via Colissimo" in preview.text
    assert 'class="mail-frame" sandbox' in preview.text and "srcdoc=" in preview.text
    assert "Bonne nouvelle Camille Martin !" in preview.text
    partial = await htmx_post(client, f"{SETTINGS}/shipped/fr", {"action": "preview", **form})
    assert partial.status_code == 200 and "<h1>Notifications</h1>" not in partial.text
    assert "En route : WEB-100234 via Colissimo" in partial.text
    wrong = await htmx_post(client, f"{SETTINGS}/shipped/fr", {"action": "preview", "subject": "{nope}",
                                                                "intro": "x"})
    assert wrong.status_code == 200 and "{nope} is not a placeholder of this mail" in wrong.text

    sent = await post_form(client, f"{SETTINGS}/shipped/fr", {"action": "test", **form})
    assert sent.status_code == 200
    assert f"A test of this mail is on its way to {tenant.email}" in sent.text
    mail = await only_mail(tenant.tenant_id, tenant.email, "test.order.shipped")
    # Marked as a test, in its subject and at the top of its body, so nobody takes it for an order's.
    assert mail.subject == "[Test] En route : WEB-100234 via Colissimo"
    marker = f"Ceci est un test avec des données d{APOSTROPHE}exemple : il ne concerne aucune vraie commande"
    assert plain(mail.body_text).startswith(f"*** {marker}")
    assert plain(mail.body_html).index(marker) < plain(mail.body_html).index("Bonjour Camille Martin,")
    assert "Suivre votre colis" in mail.body_text and mail.body_html
    assert "[Test]" not in preview.text and "Ceci est un test" not in preview.text
    assert "Your text" not in (await client.get(SETTINGS)).text  # a test saves nothing


async def test_language_and_colour_are_checked_and_audited(client) -> None:
    await signed_in_owner(client)
    refused = await post_form(client, f"{SETTINGS}/look", {"language": "de", "brand_colour": "blue"})
    assert refused.status_code == 422
    assert "Choose one of the languages offered: English, Français." in refused.text
    assert "Give the colour as # followed by six hexadecimal digits, such as #1d4ed8." in refused.text
    saved = await post_form(client, f"{SETTINGS}/look", {"language": "en", "brand_colour": "#AA3300"})
    assert saved.status_code == 303
    page = await client.get(SETTINGS)
    assert 'value="#aa3300"' in page.text and '<option value="en" selected>' in page.text
    audit = await client.get("/app/settings/audit-log")
    assert "settings.brand_colour_changed" in audit.text and "settings.language_changed" in audit.text


async def test_only_owners_and_admins_edit_the_mails(client, make_client) -> None:
    from test_roles import _join

    tenant = await create_tenant()
    merchandiser = await _join(client, make_client, tenant, "merchandiser")
    assert (await merchandiser.get(SETTINGS)).status_code == 403
    refused = await post_form(merchandiser, f"{SETTINGS}/confirmation/en",
                              {"action": "save", "subject": "Hi {order_number}", "intro": "Hello"})
    assert refused.status_code == 403
    assert (await post_form(merchandiser, f"{SETTINGS}/look", {"language": "fr", "brand_colour": "#000000"})
            ).status_code == 403


# --- delivery and addresses --------------------------------------------------------------------


async def test_smtp_sends_text_and_html_as_alternatives_from_the_company(monkeypatch) -> None:
    import smtplib

    from core import bulk
    from core.mail import SmtpTransport
    from core.models import MailMessage

    message = bulk.detached(MailMessage, {
        "id": uuid.uuid4(), "tenant_id": uuid.uuid4(), "to_address": "camille@example.test",
        "subject": "Votre commande W-1 est en route", "body_text": "Bonjour Camille,\n",
        "body_html": "<p>Bonjour Camille,</p>", "kind": "order.shipped", "meta": {"from_name": "Maison, Lenoir"}})
    sent: list[Any] = []

    class Server:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            self.address = (host, port)

        def __enter__(self) -> Server:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def send_message(self, email: Any) -> None:
            sent.append((self.address, email))

    monkeypatch.setattr(smtplib, "SMTP", Server)
    await SmtpTransport("smtp://mail.example.test:2525", "OMS <no-reply@oms.example>").deliver(message)
    [(address, email)] = sent
    assert address == ("mail.example.test", 2525)
    assert email.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in email.iter_parts()] == ["text/plain", "text/html"]
    assert email.get_body(("plain",)).get_content() == "Bonjour Camille,\n"
    assert email.get_body(("html",)).get_content().strip() == "<p>Bonjour Camille,</p>"
    assert email["From"] == '"Maison, Lenoir" <no-reply@oms.example>'
    assert email["Subject"] == "Votre commande W-1 est en route"

    assert email["List-Unsubscribe"] is None  # an order's mail is not a mailing

    campaign = bulk.detached(MailMessage, {**message.__dict__, "kind": "campaign",
                                           "meta": {"list_unsubscribe": "https://oms.example/unsubscribe/abc"}})
    mailing = SmtpTransport("smtp://mail.example.test", "OMS <no-reply@oms.example>").build(campaign)
    assert mailing["List-Unsubscribe"] == "<https://oms.example/unsubscribe/abc>"
    assert mailing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    text_only = bulk.detached(MailMessage, {**message.__dict__, "body_html": None, "meta": {}})
    plain_mail = SmtpTransport("smtp://mail.example.test", "OMS <no-reply@oms.example>").build(text_only)
    assert plain_mail.get_content_type() == "text/plain" and plain_mail["From"] == "OMS <no-reply@oms.example>"


def test_public_url_follows_the_port_unless_given(monkeypatch) -> None:
    from core.settings import load, public_url

    monkeypatch.delenv("PUBLIC_URL", raising=False)
    monkeypatch.setenv("PORT", "8123")
    assert public_url() == "http://127.0.0.1:8123"
    assert load().public_url == "http://127.0.0.1:8123"
    monkeypatch.delenv("PORT")
    assert public_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv("PORT", "not a port")
    assert public_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv("PUBLIC_URL", "https://oms.example.com/")
    monkeypatch.setenv("PORT", "8123")
    assert public_url() == "https://oms.example.com"
