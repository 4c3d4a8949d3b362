"""Customer service's search at scale: one company with 1,000,000 orders and 300,000 customers,
another beside it with 100,000 orders and 30,000 customers of the same names, and 200 varied
queries (our order numbers, the channel's, emails, names with one typo, phone numbers written in
every way) through ``support.search.search``, as the app role under row-level security, each in
its own transaction as a request would be.

Prints `bench cs_search_ms: N ms` (the 95th percentile), the median and the slowest, each kind's
95th percentile, how many queries found what they were made from, the postcode lookups apart,
and the time the data took to make (`cs_search_fill_s`). Nothing here asserts a speed;
``BENCH_CS_CUSTOMERS`` / ``BENCH_CS_ORDERS`` make it smaller.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from os import environ
from typing import Any

from sqlalchemy import text

from factories import create_tenant

CUSTOMERS = int(environ.get("BENCH_CS_CUSTOMERS", "300000"))
ORDERS = int(environ.get("BENCH_CS_ORDERS", "1000000"))
OTHER_CUSTOMERS, OTHER_ORDERS = CUSTOMERS // 10, ORDERS // 10
QUERIES = {"number": 50, "channel": 30, "email": 40, "typo": 50, "phone": 30}  # 200
BATCH = 20_000

FIRST = ("james john robert michael william david richard joseph thomas charles christopher daniel matthew "
         "anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason "
         "jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel "
         "gregory alexander patrick frank raymond jack dennis jerry tyler aaron jose adam nathan henry zachary "
         "mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty sandra "
         "margaret ashley kimberly emily donna michelle carol amanda melissa deborah stephanie dorothy rebecca "
         "sharon laura cynthia amy kathleen angela shirley brenda emma anna nicole helen samantha katherine "
         "christine debra rachel carolyn janet maria catherine heather diane olivia julie joyce victoria ruth "
         "virginia lauren kelly christina joan evelyn judith andrea hannah megan cheryl jacqueline martha "
         "madison teresa gloria sara janice ann kathryn abigail sophia frances jean alice judy isabella julia "
         "grace amber denise danielle marilyn beverly charlotte natalie theresa diana brittany doris kayla "
         "alexis lori marie chloe camille lea manon ines louise jade zoe lucas hugo louis gabriel arthur jules "
         "raphael leo adam mael nathan ethan noah paul enzo timeo elise margaux lucie sebastien francois "
         "benoit thierry herve sylvie nathalie veronique isabelle stephane frederic laurent olivier").split()
LAST = ("smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez "
        "wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark "
        "ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green adams "
        "nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz "
        "edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson "
        "bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray "
        "mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez bernard "
        "dubois durand lefebvre leroy moreau simon laurent michel fournier girard bonnet dupont lambert "
        "fontaine rousseau vincent muller faure andre mercier blanc guerin boyer garnier chevalier francois "
        "legrand gauthier perrin robin clement morin nicolas henry roussel mathieu gautier masson marchand "
        "duval denis dumont marie lemaire noel meyer dufour meunier brun blanchard giraud joly riviere lucas "
        "brunet gaillard barbier arnaud martinez gerard roche renard schmitt roy leroux colin vidal caron "
        "picard roger fabre aubert lemoine renaud dumas lacroix olivier philippe bourgeois pierre benoit rey "
        "leclerc payet rolland leclercq guillaume lecomte lopez jean dupuy guillot hubert berger carpentier "
        "sanchez dupuis moulin louis deschamps huet vasseur perez boucher fleury royer klein jacquet adam "
        "paris poirier marty aubry guyot carre charles renault charpentier menard maillard baron bertin "
        "bailly herve schneider fernandez le collet leger bouvier julien prevost millet perrot daniel cousin "
        "germain breton besson langlois remy pelletier leveque perrier leblanc barre lebrun marchal weber "
        "mallet hamon boulanger jacob monnier michaud rodriguez guichard gillet etienne grondin poulain "
        "tessier chevallier collin chauvin da bouchet gay lemaitre benard marechal humbert reynaud antoine "
        "hoarau perret barthelemy cordier pichon lejeune gilbert lamy delaunay pasquier carlier laporte").split()
SYLLABLES = ("ba be bi bo bu da de di do du fa fe fi fo ga ge go ka ke ki ko la le li lo lu ma me mi mo mu na ne ni "
             "no nu pa pe pi po ra re ri ro ru sa se si so ta te ti to tu va ve vi vo za ze zo ch sh th ll rr nn "
             "er an en on in ar or ur el al ol").split()
DOMAINS = ("gmail.com", "yahoo.fr", "orange.fr", "hotmail.com", "outlook.com", "free.fr", "icloud.com",
           "example.test")


def people(rng: random.Random, count: int, first_number: int) -> list[tuple[str, str, str]]:
    """(name, email, phone) for ``count`` customers: common names often, rare ones seldom."""
    invented = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(40_000)})
    lasts = LAST + invented
    found = []
    for n in range(count):
        first = FIRST[int(len(FIRST) * rng.random() ** 2)]
        last = lasts[int(len(lasts) * rng.random() ** 3)]
        name = f"{first.capitalize()} {last.capitalize()}"
        if rng.random() < 0.05:
            name = f"{first.capitalize()}-{FIRST[rng.randrange(len(FIRST))].capitalize()} {last.capitalize()}"
        shape = rng.randrange(4)
        local = (f"{first}.{last}" if shape == 0 else f"{first[0]}{last}" if shape == 1
                 else f"{first}{last[:3]}" if shape == 2 else f"{last}.{first}")
        email = f"{local}{first_number + n}@{DOMAINS[n % len(DOMAINS)]}"
        digits = f"6{(n * 7_919 + 12_345_678) % 100_000_000:08d}"  # a mobile number of its own
        phone = f"+33 {digits[0]} {digits[1:3]} {digits[3:5]} {digits[5:7]} {digits[7:9]}" if n % 2 else "0" + digits
        found.append((name, email, phone))
    return found


async def fill_customers(raw: Any, tenant_id: uuid.UUID, rows: list[tuple[str, str, str]]) -> int:
    """The company's customers and their search keys, with COPY; how many keys."""
    from datetime import UTC, datetime

    from core.search_keys import record_keys

    stamp = datetime.fromtimestamp(time.time(), UTC)
    keys = 0
    for start in range(0, len(rows), BATCH):
        records, key_records = [], []
        for i, (name, email, phone) in enumerate(rows[start:start + BATCH]):
            customer_id = uuid.UUID(int=(tenant_id.int ^ (start + i + 1)))
            records.append((tenant_id, customer_id, email.lower(), name, phone, [], stamp, stamp))
            key_records += [(tenant_id, key, customer_id) for key in record_keys(name=name, email=email, phone=phone)]
        await raw.copy_records_to_table("customers", records=records, columns=[
            "tenant_id", "id", "email", "name", "phone", "tags", "created_at", "updated_at"])
        await raw.copy_records_to_table("customer_search_keys", records=key_records,
                                        columns=["tenant_id", "key", "customer_id"])
        keys += len(key_records)
    return keys


# The search keys' primary key (the search's index) and foreign keys, made again once the keys
# are in, as one loads a table in bulk: the same constraints, built once rather than row by row.
KEY_CONSTRAINTS = (
    ("pk_customer_search_keys", "PRIMARY KEY (tenant_id, key, customer_id)"),
    ("fk_customer_search_keys_tenant_id_customer_id_customers",
     "FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE"),
    ("fk_customer_search_keys_tenant_id_tenants", "FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE"),
)


# Orders of the company's customers (each about ORDERS / CUSTOMERS of them), numbered as capture
# numbers them (a bijection of n: never two alike), over the past years, delivered to ~3,800 postcodes.
FILL_ORDERS = """
    INSERT INTO orders (tenant_id, id, number, channel, external_number, status, currency, subtotal_minor,
                        discount_minor, shipping_fee_minor, total_minor, delivery_mode, ship_country, ship_postcode,
                        ship_city, customer_id, customer_email, customer_name, customer_phone, customer_tags,
                        payment_status, authorized_minor, captured_minor, refunded_minor, excluded_locations,
                        created_by, placed_at, created_at, updated_at)
    SELECT :t, gen_random_uuid(),
           'O-' || upper(lpad(to_hex((n::bigint * 2654435761 + CAST(:salt AS bigint)) % 1099511627776), 10, '0')),
           (ARRAY['web', 'store', 'marketplace', 'api'])[1 + n % 4],
           (ARRAY['WEB-', 'POS-', 'AMZ-', 'API-'])[1 + n % 4] || (n * 7 + CAST(:salt AS integer)),
           (ARRAY['routed', 'shipped', 'delivered', 'cancelled', 'on_hold', 'collected'])[1 + n % 6], 'EUR',
           1999 + n % 9000, 0, 0, 1999 + n % 9000, 'ship', 'FR',
           lpad((1 + (n * 31) % 95)::text, 2, '0') || lpad(((n * 13) % 40 * 10)::text, 3, '0'), 'Ville',
           p.id, p.email, p.name, p.phone, '{}', 'captured', 1999 + n % 9000, 1999 + n % 9000, 0, '{}', 'bench',
           now() - make_interval(mins => n), now(), now()
    FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n
    JOIN bench_people p ON p.k = (n::bigint * 7919) % CAST(:customers AS bigint)
"""


async def fill(owner_engine: Any, companies: list[tuple[uuid.UUID, list[tuple[str, str, str]], int, int]]) -> int:
    """Each (company, its customers, its orders, a salt for its numbers). The customers and their
    search keys go in with COPY, the keys' constraints made once they are all in; then the orders,
    set-based, against a numbered copy of the company's customers. Returns how many keys."""
    keys = 0
    async with owner_engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for name, _ in reversed(KEY_CONSTRAINTS):
            await raw.execute(f"ALTER TABLE customer_search_keys DROP CONSTRAINT {name}")
        try:
            for tenant_id, customers, _, _ in companies:
                keys += await fill_customers(raw, tenant_id, customers)
        finally:
            await raw.execute("SET maintenance_work_mem = '512MB'")
            for name, definition in KEY_CONSTRAINTS:
                await raw.execute(f"ALTER TABLE customer_search_keys ADD CONSTRAINT {name} {definition}")
            await raw.execute("RESET maintenance_work_mem")
        await conn.execute(text("SET work_mem = '64MB'"))
        for tenant_id, customers, orders, salt in companies:
            await conn.execute(text("CREATE TEMP TABLE bench_people AS SELECT (row_number() OVER (ORDER BY id) - 1) "
                                    "AS k, id, email, name, phone FROM customers WHERE tenant_id = :t"),
                               {"t": tenant_id})
            await conn.execute(text("CREATE UNIQUE INDEX ON bench_people (k)"))
            for first in range(1, orders + 1, 250_000):
                await conn.execute(text(FILL_ORDERS), {"t": tenant_id, "first": first,
                                                       "last": min(orders, first + 249_999),
                                                       "customers": len(customers), "salt": salt})
                await conn.commit()
            await conn.execute(text("DROP TABLE bench_people"))
        await conn.commit()
    return keys


def one_typo(rng: random.Random, name: str) -> str:
    """The name with one typo in one of its words: two letters swapped, one left out, one wrong, one too many."""
    words = name.split()
    long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()] or [len(words) - 1]
    i = rng.choice(long_words)
    word = words[i]
    at = rng.randrange(1, len(word) - 1) if len(word) > 2 else 0
    kind = rng.randrange(4)
    if kind == 0:
        word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
    elif kind == 1:
        word = word[:at] + word[at + 1:]
    elif kind == 2:
        word = word[:at] + rng.choice([c for c in "aeioulnrst" if c != word[at].lower()]) + word[at + 1:]
    else:
        word = word[:at] + rng.choice("aeioulnrst") + word[at:]
    words[i] = word
    return " ".join(words)


def phone_as_typed(rng: random.Random, phone: str) -> str:
    digits = "".join(c for c in phone if c.isdigit())[-9:]
    shape = rng.randrange(4)
    if shape == 0:
        return "0" + digits
    if shape == 1:
        return "+33 " + " ".join([digits[0], *(digits[i:i + 2] for i in range(1, 9, 2))])
    if shape == 2:
        return "0" + ".".join([digits[0], *(digits[i:i + 2] for i in range(1, 9, 2))])
    return "+33" + digits


async def test_cs_search_at_a_million_orders(owner_engine: Any) -> None:
    from core.auth import Principal
    from core.db import get_database
    from support import search

    started = time.perf_counter()
    a, b = await create_tenant(), await create_tenant()
    rng = random.Random(17)
    mine, theirs = people(rng, CUSTOMERS, 1), people(rng, OTHER_CUSTOMERS, 5_000_001)
    for i in range(0, min(OTHER_CUSTOMERS, 2000)):  # namesakes, same emails and phones, in the other company
        theirs[i] = mine[i * 7]
    keys = await fill(owner_engine, [(a.tenant_id, mine, ORDERS, 0), (b.tenant_id, theirs, OTHER_ORDERS, 977)])
    async with owner_engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("customers", "customer_search_keys", "orders"):
            await autocommit.execute(text(f"VACUUM ANALYZE {table}"))
    fill_s = time.perf_counter() - started
    print(f"\nbench cs_search_fill_s: {fill_s:.1f} s for {CUSTOMERS + OTHER_CUSTOMERS} customers "
          f"({keys} search keys) and {ORDERS + OTHER_ORDERS} orders")

    # The queries, made from what company A holds.
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a.tenant_id)})
        sample = (await conn.execute(text(
            "SELECT number, external_number, customer_email, customer_name, customer_phone, ship_postcode FROM orders "
            "WHERE tenant_id = :t ORDER BY md5(id::text) LIMIT 400"), {"t": a.tenant_id})).all()
    rng = random.Random(29)
    rng.shuffle(sample := list(sample))
    picks = iter(sample)
    queries: list[tuple[str, str, str]] = []  # (kind, query, what a right answer holds)
    for _ in range(QUERIES["number"]):
        row = next(picks)
        queries.append(("number", row.number.lower() if rng.random() < 0.3 else row.number, row.number))
    for _ in range(QUERIES["channel"]):
        row = next(picks)
        queries.append(("channel", row.external_number, row.external_number))
    for _ in range(QUERIES["email"]):
        row = next(picks)
        queries.append(("email", row.customer_email.upper() if rng.random() < 0.2 else row.customer_email,
                        row.customer_email))
    for _ in range(QUERIES["typo"]):
        row = next(picks)
        queries.append(("typo", one_typo(rng, row.customer_name), row.customer_name))
    for _ in range(QUERIES["phone"]):
        row = next(picks)
        queries.append(("phone", phone_as_typed(rng, row.customer_phone), row.customer_email))
    postcodes = [("postcode", row.ship_postcode, row.ship_postcode) for row in (next(picks) for _ in range(20))]
    rng.shuffle(queries)

    principal = Principal(tenant_id=a.tenant_id, role="customer_service", label="bench@example.test",
                          tenant_name="Bench", timezone="Europe/Paris", currency="EUR")
    database = get_database()

    async def run(q: str) -> tuple[float, Any]:
        began = time.perf_counter()
        async with database.transaction(tenant_id=a.tenant_id, user_id=None) as session:
            found = await search.search(session, principal, q)
        return (time.perf_counter() - began) * 1000, found

    # The search's plan as the app role, under row-level security: the keys' index, not a scan.
    from core.db import driver
    from core.search_keys import query_keys
    from customers.service import _SEARCH, search_arguments

    typo = next(q for kind, q, _ in queries if kind == "typo")
    async with database.transaction(tenant_id=a.tenant_id) as session:
        plan = "\n".join(row[0] for row in await (await driver(session)).fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + _SEARCH, *search_arguments(a.tenant_id, query_keys(typo))))
    print(f"bench cs_search_plan ({typo!r}, with typos):\n{plan}")
    assert "Index Only Scan using pk_customer_search_keys" in plan or "Index Scan using pk_customer_search_keys" in plan

    for _, q, _ in queries[:20]:  # the pool's connections and their prepared statements
        await run(q)
    timings: dict[str, list[float]] = {}
    right: dict[str, int] = {}
    for kind, q, want in [*queries, *postcodes]:
        ms, found = await run(q)
        timings.setdefault(kind, []).append(ms)
        if kind in ("number", "channel", "postcode"):
            ok = any(want in (o.number, o.external_number) or (kind == "postcode") for o in found.orders)
        elif kind == "typo":
            ok = any(c.name == want for c in found.customers)
        else:
            ok = any(c.email == want for c in found.customers)
        right[kind] = right.get(kind, 0) + ok

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]

    every = [ms for kind, values in timings.items() if kind != "postcode" for ms in values]
    print(f"bench cs_search_ms: {p95(every):.1f} ms (p95 of {len(every)} queries)")
    print(f"bench cs_search_median_ms: {statistics.median(every):.1f} ms, slowest {max(every):.1f} ms")
    for kind, values in timings.items():
        print(f"bench cs_search_{kind}_ms: {p95(values):.1f} ms p95, found {right[kind]}/{len(values)}")
    assert len(every) == sum(QUERIES.values())
