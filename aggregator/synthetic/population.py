"""The synthetic population: who the true victims are and which organisations know them.

Every number here is either taken from the public figures in docs/figures.md (the comment says "docs/figures.md"
and what the figure is) or a choice (the comment says "plausible" or "chosen"); docs/figures.md lists them number
by number. Generation uses `random.Random` streams derived from (seed, year), so the same arguments give the same
people.

How the nation hangs together:
  1. people: form of exploitation, nationality, age, gender, province drawn per person;
  2. the anonymous help line picks its ~285 chatters among young (mostly Dutch, mostly female) victims;
  3. investigative bodies detect a small share of people (statutory basis: all their records are shareable);
  4. every person visits non-investigative organisations: a Poisson number of visits to each, independently, with
     means from the person's stratum (or detection: police refer to care) spread by region and by what each
     organisation does (youth shelter, shelter for foreign victims, ...);
  5. consent is asked at every non-investigative organisation and rarely given, so consent-only registration
     (statutory + consented, distinct people) lands near the real 2018-2020 figures while the truth is far larger;
  6. some victims meet no organisation at all: an undetected person who is not a chatter visits no organisation
     with probability exp(-NI_RATE) (NI_RATE lower for minors and Dutch victims). They are the dark number that
     multiple-systems estimation tries to recover; the nation writes them apart (unseen.parquet).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from ..contract.codelists import age_band, nationality_group
from .names import COUNTRY_POOL, NAME_POOLS
from .organisations import ORGANISATIONS, OrgSpec

SYNTH_VERSION = 1
# Victims in a year, known to an organisation or not: chosen in ~6,000-8,000 (docs/figures.md: ~3,000 Dutch sexual
# victims alone (F3); 5,000-7,500 victims a year estimated in all (F10)). The detection chances below are shares of
# all victims, as the public figures are (F4: 29 of ~1,300 Dutch minor victims reported).
BASE_POPULATION = 7_000
HELP_LINE_CHATTERS = 285  # docs/figures.md: 285 victims sought help through the anonymous chat in one year

# ------------------------------------------------------------------------------------------------ the population

FORM_SHARES = {
    # docs/figures.md: ~3,000 Dutch sexual victims/yr (the most common form) + foreign victims; the share is plausible
    "sexual": 0.44,
    "labour": 0.30,  # docs/figures.md: 17% (2019) to 43% (2020) of reports; we take a middle value
    "criminal": 0.15,  # not in docs/figures.md: plausible (drug running, theft, forced begging)
    "organ_removal": 0.005,  # docs/figures.md names the form; rare - plausible
    "other_unknown": 0.105,  # not in docs/figures.md: plausible
}

# Nationality group by form. docs/figures.md: Dutch victims dominate sexual exploitation; labour victims are labour
# migrants (EU) and migrants without residence status (non-EU). The exact splits are plausible choices.
NATIONALITY_SHARES = {
    "sexual": {"NL": 0.72, "EU": 0.09, "non_EU": 0.17, "unknown": 0.02},
    "labour": {"NL": 0.05, "EU": 0.50, "non_EU": 0.43, "unknown": 0.02},
    "criminal": {"NL": 0.45, "EU": 0.13, "non_EU": 0.40, "unknown": 0.02},
    "organ_removal": {"NL": 0.0, "EU": 0.05, "non_EU": 0.95, "unknown": 0.0},
    "other_unknown": {"NL": 0.30, "EU": 0.22, "non_EU": 0.40, "unknown": 0.08},
}
EU_COUNTRIES = {"PL": 30, "RO": 26, "BG": 18, "HU": 10, "LT": 4, "SK": 4, "CZ": 3, "DE": 3, "PT": 2}  # plausible
NON_EU_COUNTRIES = {  # plausible, by form
    "sexual": {"NG": 22, "UA": 12, "CN": 10, "BR": 8, "VN": 6, "TH": 6, "MA": 5, "SR": 5, "TR": 4, "UG": 4, "SY": 3,
               "ER": 3, "PH": 3, "IN": 2, "AF": 2},
    "labour": {"UA": 22, "VN": 10, "CN": 10, "PH": 10, "IN": 10, "MA": 6, "TR": 6, "ER": 4, "SY": 4, "NG": 4, "BR": 4,
               "TH": 4, "AF": 2},
    "criminal": {"MA": 20, "VN": 12, "ER": 10, "SY": 10, "AF": 8, "NG": 8, "UA": 8, "SR": 8, "DZ": 6, "TR": 6, "CN": 4},
    "organ_removal": {"ER": 30, "NG": 20, "SY": 20, "AF": 10, "MA": 10, "UA": 10},
    "other_unknown": {"UA": 15, "NG": 12, "MA": 10, "SY": 10, "ER": 10, "VN": 8, "CN": 8, "BR": 6, "TR": 6, "SR": 5,
                      "PH": 5, "IN": 5},
}

# Age band by form and whether Dutch. docs/figures.md: ~1,300 of ~3,000 Dutch sexual victims are minors (43%);
# minors are named as a vulnerable group. Everything else here is a plausible choice.
AGE_SHARES = {
    ("sexual", True): {"under_15": 0.15, "15_17": 0.28, "18_24": 0.30, "25_plus": 0.25, "unknown": 0.02},
    ("sexual", False): {"under_15": 0.02, "15_17": 0.07, "18_24": 0.33, "25_plus": 0.55, "unknown": 0.03},
    ("labour", True): {"under_15": 0.0, "15_17": 0.04, "18_24": 0.26, "25_plus": 0.68, "unknown": 0.02},
    ("labour", False): {"under_15": 0.0, "15_17": 0.02, "18_24": 0.18, "25_plus": 0.77, "unknown": 0.03},
    ("criminal", True): {"under_15": 0.10, "15_17": 0.30, "18_24": 0.32, "25_plus": 0.26, "unknown": 0.02},
    ("criminal", False): {"under_15": 0.05, "15_17": 0.20, "18_24": 0.35, "25_plus": 0.37, "unknown": 0.03},
    ("organ_removal", True): {"under_15": 0.0, "15_17": 0.0, "18_24": 0.30, "25_plus": 0.70, "unknown": 0.0},
    ("organ_removal", False): {"under_15": 0.0, "15_17": 0.05, "18_24": 0.30, "25_plus": 0.65, "unknown": 0.0},
    ("other_unknown", True): {"under_15": 0.05, "15_17": 0.10, "18_24": 0.25, "25_plus": 0.52, "unknown": 0.08},
    ("other_unknown", False): {"under_15": 0.02, "15_17": 0.06, "18_24": 0.25, "25_plus": 0.59, "unknown": 0.08},
}
GENDER_SHARES = {  # plausible; docs/figures.md: the help line's chatters are mostly girls
    "sexual": {"female": 0.88, "male": 0.10, "other": 0.01, "unknown": 0.01},
    "labour": {"female": 0.30, "male": 0.69, "other": 0.0, "unknown": 0.01},
    "criminal": {"female": 0.33, "male": 0.65, "other": 0.01, "unknown": 0.01},
    "organ_removal": {"female": 0.30, "male": 0.70, "other": 0.0, "unknown": 0.0},
    "other_unknown": {"female": 0.52, "male": 0.44, "other": 0.01, "unknown": 0.03},
}
# Province of residence / where exploited: roughly population, with labour exploitation leaning to the
# greenhouse and distribution regions (NB, ZH, LI, GE). Plausible.
PROVINCE_SHARES = {"NL-ZH": 22, "NL-NH": 18, "NL-NB": 14, "NL-GE": 11, "NL-UT": 8, "NL-LI": 6, "NL-OV": 6, "NL-GR": 3,
                   "NL-FR": 3, "NL-FL": 3, "NL-DR": 2, "NL-ZE": 2, "unknown": 2}
LABOUR_PROVINCE_LEAN = {"NL-NB": 1.5, "NL-ZH": 1.3, "NL-LI": 1.4, "NL-GE": 1.2, "NL-NH": 0.8, "NL-UT": 0.7}

# Chance that an investigative body detects a person (statutory report). docs/figures.md: in 2018 only 132 Dutch
# sexual-exploitation victims were reported (4.4% of ~3,000), 29 of them minors (2-3% of ~1,300). The rest plausible,
# tuned so that statutory + consented registrations land near the 2018-2020 figures (668 - 1,334).
DETECTION = {
    ("sexual", "NL", True): 0.025, ("sexual", "NL", False): 0.06, ("sexual", "foreign", None): 0.20,
    ("labour", None, None): 0.095, ("criminal", None, None): 0.13,
    ("organ_removal", None, None): 0.45, ("other_unknown", None, None): 0.04,
}

# Non-investigative organisations a person meets (chosen): visits to each organisation are Poisson with mean
# rate x (the organisation's share of the person's affinity weights, by region and by what it does), independently
# per organisation, so a person meets about `rate` organisations and none with probability exp(-rate) whatever
# their affinities. Independent visits keep the lists conditionally independent given the stratum and the
# investigative lists, as the log-linear models of multiple-systems estimation assume (estimate/mse.py); drawing
# a number of organisations first and then that many without replacement made people with few eligible
# organisations land on two lists at once, a dependence no pairwise model captures (benchmarks/mse.py: coverage
# of the adult non-Dutch totals 0 of 20). By stratum (minor, Dutch), in the public direction: minors and Dutch
# victims are the least visible (docs/figures.md F3/F4); the anonymous chat's users meet others at their
# stratum's rate (F9: many are known to no other organisation). The size is chosen so that about 1 in 2 victims
# is known to some organisation (F10: about 1 in 5 is registered, and organisations know more than they register).
NI_RATE = {(True, True): 0.3, (True, False): 0.4, (False, True): 0.45, (False, False): 0.55}
# Detected people: the police refer most victims to care (chosen; care coordination weighs 2.5x for them, _affinity).
NI_RATE_DETECTED = 0.9

WITHDRAWAL_RATE = 0.04  # share of consents withdrawn before the export date; plausible ("a few")
DUPLICATE_RATE = 0.03  # share of people with a second intake row at an organisation that keeps duplicates; plausible


# ------------------------------------------------------------------------------------------------ people

@dataclass
class Contact:
    org: str
    dates: list[dt.date]  # one intake row per date (a second date = a duplicate intake row)
    consent: bool | None = None
    consent_date: dt.date | None = None
    withdrawn_date: dt.date | None = None
    lawful: bool = False


@dataclass
class Person:
    key: str
    form: str
    nationality: str | None
    age: int | None
    gender: str
    province: str
    family_name: str | None = None
    given_names: str | None = None
    date_of_birth: dt.date | None = None
    chatter: bool = False
    detected: bool = False
    consent_mood: float = 1.0
    contacts: list[Contact] = field(default_factory=list)

    @property
    def nationality_group(self) -> str:
        return nationality_group(self.nationality)

    @property
    def age_band(self) -> str:
        return age_band(self.age)

    @property
    def minor(self) -> bool:
        return self.age is not None and self.age < 18


def _pick(rng: random.Random, weights: dict) -> object:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _draw_age(rng: random.Random, band: str) -> int | None:
    if band == "unknown":
        return None
    if band == "under_15":
        return rng.choices([10, 11, 12, 13, 14], weights=[1, 1, 2, 3, 4])[0]
    if band == "15_17":
        return rng.randint(15, 17)
    if band == "18_24":
        return rng.randint(18, 24)
    return 25 + int(rng.triangular(0, 38, 6))


def _draw_people(rng: random.Random, n: int) -> list[Person]:
    people = []
    for i in range(n):
        form = _pick(rng, FORM_SHARES)
        group = _pick(rng, NATIONALITY_SHARES[form])
        if group == "NL":
            nationality = "NL"
        elif group == "EU":
            nationality = _pick(rng, EU_COUNTRIES)
        elif group == "non_EU":
            nationality = _pick(rng, NON_EU_COUNTRIES[form])
        else:
            nationality = None
        age = _draw_age(rng, _pick(rng, AGE_SHARES[(form, nationality == "NL")]))
        gender = _pick(rng, GENDER_SHARES[form])
        provinces = dict(PROVINCE_SHARES)
        if form == "labour":
            provinces = {p: w * LABOUR_PROVINCE_LEAN.get(p, 1.0) for p, w in provinces.items()}
        province = _pick(rng, provinces)
        people.append(Person(f"P{i + 1:06d}", form, nationality, age, gender, province))
    return people


def _chatter_weight(p: Person) -> float:
    """Who uses the anonymous chat: young, Dutch, female, sexual exploitation (docs/figures.md).

    The weights are plausible, tuned so that ~1 in 5 chatters is under 15 (docs/figures.md)."""
    w = {"sexual": 1.0, "criminal": 0.5, "other_unknown": 0.3, "labour": 0.05, "organ_removal": 0.0}[p.form]
    w *= {"under_15": 2.0, "15_17": 2.0, "18_24": 1.4, "25_plus": 0.35, "unknown": 0.3}[p.age_band]
    w *= {"female": 1.0, "male": 0.5, "other": 0.8, "unknown": 0.5}[p.gender]
    w *= {"NL": 1.0, "EU": 0.1, "non_EU": 0.2, "unknown": 0.3}[p.nationality_group]
    return w


def _weighted_sample(rng: random.Random, items: list, weights: list[float], k: int) -> list:
    """k items without replacement, chance proportional to weight (Efraimidis-Spirakis keys)."""
    keyed = [(rng.random() ** (1.0 / w), i) for i, w in enumerate(weights) if w > 0]
    keyed.sort(reverse=True)
    return [items[i] for _, i in keyed[:k]]


def _detection_chance(p: Person) -> float:
    if p.form == "sexual":
        if p.nationality == "NL":
            return DETECTION[("sexual", "NL", p.minor)]
        return DETECTION[("sexual", "foreign", None)]
    return DETECTION[(p.form, None, None)]


def _regional(org: OrgSpec, province: str) -> float:
    if not org.region:
        return 1.0
    if province == "unknown":
        return 0.25 * max(org.region.values())
    return org.region.get(province, 0.03)  # people are sometimes placed or seek help out of region


def _affinity(org: OrgSpec, p: Person) -> float:
    """How likely a person turns up at an organisation (relative), by what the organisation does."""
    adult = not p.minor
    foreign = p.nationality_group in ("EU", "non_EU")
    young = p.age is not None and p.age < 25
    profile = org.profile
    if profile == "care":
        w = 2.5 if p.detected else 1.0
    elif profile == "foreign_adults":
        w = (1.0 if foreign else 0.05) if adult else 0.02
    elif profile == "youth_sexual":
        if young and p.nationality_group in ("NL", "unknown"):
            w = {"sexual": 1.0, "criminal": 0.4}.get(p.form, 0.1) * (1.0 if p.gender != "male" else 0.4)
        else:
            w = 0.01
    elif profile == "men":
        w = (1.0 if p.form == "labour" else 0.7) if (adult and p.gender == "male") else 0.0
    elif profile == "women":
        w = (1.0 if p.form == "sexual" else 0.5) if (adult and p.gender == "female") else 0.0
    elif profile == "labour_shelter":
        w = 1.0 if (p.form == "labour" and foreign and adult) else 0.02
    elif profile == "municipality":
        w = {"NL": 1.0, "EU": 0.9, "non_EU": 0.6, "unknown": 0.6}[p.nationality_group] * (0.5 if p.minor else 1.0)
    elif profile == "labour_ngo":
        w = (1.0 if foreign else 0.3) if p.form == "labour" else 0.02
    elif profile == "youth_care":
        w = {"sexual": 1.0, "criminal": 1.0}.get(p.form, 0.4) if p.minor else (0.1 if young else 0.0)
    else:
        w = 0.0
    return org.size * w * _regional(org, p.province)


def _investigative_orgs(rng: random.Random, p: Person) -> list[str]:
    police_units = {o.id: o for o in ORGANISATIONS if o.reporter_type == "police"}
    def police() -> str:
        weights = {oid: (_regional(o, p.province) if p.province != "unknown" else 1.0) for oid, o in police_units.items()}
        return str(_pick(rng, weights))
    if p.form == "labour":
        found = ["arbeidsinspectie"] if rng.random() < 0.8 else [police()]
        if found == ["arbeidsinspectie"] and rng.random() < 0.06:  # joint action
            found.append(police())
        return found
    if p.nationality_group == "non_EU" and p.form in ("sexual", "organ_removal") and rng.random() < 0.18:
        return ["kmar"]  # detected at the border or at Schiphol
    return [police()]


def _contact_dates(rng: random.Random, year: int, first: dt.date, dup: bool) -> list[dt.date]:
    end = dt.date(year, 12, 31)
    start = min(first + dt.timedelta(days=min(int(rng.expovariate(1 / 25)), 89)), end)
    dates = [start]
    if dup:
        dates.append(min(start + dt.timedelta(days=rng.randint(1, 30)), end))
    return dates


def _birthday(rng: random.Random, year: int, window: tuple[dt.date, dt.date], age: int) -> dt.date:
    """A date of birth with the given age on every date in the window (no birthday inside it)."""
    while True:
        day = dt.date(2001, 1, 1) + dt.timedelta(days=rng.randrange(365))  # non-leap calendar: no 29 February
        birthday = dt.date(year, day.month, day.day)
        if window[0] <= birthday <= window[1]:
            continue
        birth_year = year - age if birthday < window[0] else year - age - 1
        return dt.date(birth_year, day.month, day.day)


def _consent_chance(org_rate: float, p: Person) -> float:
    chance = org_rate * p.consent_mood
    if p.minor:
        # minors (or their parents) consent less often: plausible (docs/figures.md: 2-3% of Dutch minors visible)
        chance *= 0.2
    elif p.form == "sexual" and p.nationality == "NL":
        chance *= 0.5  # Dutch adults exploited sexually often stay tied to the exploiter: plausible
    if p.detected:
        chance *= 2.0  # victims in a criminal case see a reason to be registered: plausible
    return min(chance, 0.9)


def _build(year: int, seed: int, scale: float) -> tuple[list[Person], dict[str, float], list[Person]]:
    """(people known to at least one organisation, consent rates, people known to none)."""
    rng = random.Random(f"synth:{SYNTH_VERSION}:{year}:{seed}:people")
    n = max(1, round(scale * rng.uniform(0.93, 1.07) * BASE_POPULATION))
    people = _draw_people(rng, n)

    orgs = {o.id: o for o in ORGANISATIONS}
    org_rng = random.Random(f"synth:{SYNTH_VERSION}:{year}:{seed}:orgs")
    consent_rates = {o.id: round(org_rng.uniform(*o.consent_rate), 3) for o in ORGANISATIONS}

    rng = random.Random(f"synth:{SYNTH_VERSION}:{year}:{seed}:help-line")
    chatters = _weighted_sample(rng, people, [_chatter_weight(p) for p in people], max(1, round(HELP_LINE_CHATTERS * scale)))
    for p in chatters:
        p.chatter = True

    rng = random.Random(f"synth:{SYNTH_VERSION}:{year}:{seed}:contacts")
    ni_orgs = [o for o in ORGANISATIONS if o.kind == "non_investigative" and o.profile != "help_line"]
    year_start = dt.date(year, 1, 1)
    days = (dt.date(year, 12, 31) - year_start).days
    for p in people:
        p.consent_mood = rng.choice((0.4, 1.6))  # the same person tends to say yes (or no) everywhere
        first = year_start + dt.timedelta(days=rng.randint(0, days))
        chance = _detection_chance(p) * (0.3 if p.chatter else 1.0)
        p.detected = rng.random() < chance
        org_ids: list[str] = []
        if p.chatter:
            org_ids.append("chat-hulplijn")
        if p.detected:
            org_ids.extend(_investigative_orgs(rng, p))
        rate = NI_RATE_DETECTED if p.detected else NI_RATE[(p.minor, p.nationality == "NL")]
        weights = [_affinity(o, p) for o in ni_orgs]
        spread = sum(weights)
        for o, w in zip(ni_orgs, weights):  # visits to each organisation: Poisson(rate * its share of the weight)
            if w > 0 and rng.random() < -math.expm1(-rate * w / spread):
                org_ids.append(o.id)
        for org_id in org_ids:
            org = orgs[org_id]
            dup = org.keeps_duplicates and rng.random() < (0.10 if org.profile == "help_line" else DUPLICATE_RATE)
            contact = Contact(org_id, _contact_dates(rng, year, first, dup))
            if org.kind == "investigative":
                contact.lawful = True
            elif org.profile != "help_line":  # the anonymous chat never asks for consent
                if rng.random() < _consent_chance(consent_rates[org_id], p):
                    contact.consent = True
                    contact.consent_date = min(contact.dates[0] + dt.timedelta(days=rng.randint(0, 30)),
                                               dt.date(year, 12, 31))
                    if rng.random() < WITHDRAWAL_RATE:
                        contact.withdrawn_date = min(contact.consent_date + dt.timedelta(days=rng.randint(1, 90)),
                                                     dt.date(year, 12, 31))
                    contact.lawful = contact.withdrawn_date is None
                else:
                    contact.consent = False if rng.random() < 0.75 else None  # "no", or never recorded
            p.contacts.append(contact)

    unseen = [p for p in people if not p.contacts]
    people = [p for p in people if p.contacts]
    rng = random.Random(f"synth:{SYNTH_VERSION}:{year}:{seed}:identity")
    seen: set[tuple] = set()
    for p in people:
        window = (min(d for c in p.contacts for d in c.dates), max(d for c in p.contacts for d in c.dates))
        if p.age is not None:
            p.date_of_birth = _birthday(rng, year, window, p.age)
        family, female, male = NAME_POOLS[COUNTRY_POOL.get(p.nationality or "", "nl")]
        while True:
            given_pool = female if p.gender == "female" else male if p.gender == "male" else female + male
            p.family_name = rng.choice(family)
            p.given_names = rng.choice(given_pool)
            if p.nationality == "NL" and rng.random() < 0.25:  # Dutch records often carry several given names
                p.given_names += " " + rng.choice(given_pool)
            identity = (p.family_name, p.given_names, p.date_of_birth)
            if identity not in seen:  # distinct people never share a pseudonym
                seen.add(identity)
                break
    return people, consent_rates, unseen
