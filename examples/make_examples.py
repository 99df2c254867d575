"""Build every example export from a fixed seed: `python examples/make_examples.py [--out DIR]`.

Three fictional organisations, each with its own column names and values (see README.md):
  police-oost/export-2025.csv               investigative, comma, UTF-8, ISO dates, ~300 rows
  shelter-noord/export-2025.csv             shelter, semicolon, Windows-1252, dd-mm-yyyy, ~120 rows, 3 invalid rows
  shelter-noord/export-2025-clean.csv       the same without the 3 invalid rows
  helpline-chat/export-2025.xlsx            anonymous chat help line, workbook, ~280 chats

Everything is synthetic: surnames are made-up ("Proefberg", "Demowska") and ids are random. Shares follow
docs/figures.md where it gives them and are chosen plausibly where it does not (marked "chosen").
Only the standard library and openpyxl (a project dependency) are used; the output is byte-for-byte reproducible.
Mapping files (mapping.toml) are written by hand, not by this script.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import random
import re
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

SEED = 20250101
HERE = Path(__file__).resolve().parent
YEAR = 2025
FIXED_TIME = dt.datetime(2026, 1, 15, 9, 0, 0)  # "export date" used in README.md

# ---------------------------------------------------------------- synthetic people

# Given names per nationality; only characters Windows-1252 can hold (the shelter's export is cp1252).
GIVEN = {
    "NL": (["Anouk", "Sanne", "Lotte", "Zoë", "Noëlle", "Iris", "Fleur", "Eline", "Britt", "Chloé", "Maud", "Esmée", "Femke"],
           ["Daan", "Sem", "Jesse", "René", "André", "Thijs", "Bram", "Luuk"]),
    "PL": (["Agnieszka", "Katarzyna", "Magdalena", "Joanna", "Ewa"], ["Piotr", "Tomasz", "Marek", "Krzysztof"]),
    "RO": (["Ioana", "Andreea", "Elena", "Mirela"], ["Mihai", "Florin", "Adrian", "Ionut"]),
    "BG": (["Desislava", "Petya", "Radka"], ["Georgi", "Stoyan", "Ivan"]),
    "HU": (["Zsófia", "Réka", "Eszter"], ["Bálint", "Gábor"]),
    "LT": (["Ruta", "Egle"], ["Tomas", "Darius"]),
    "NG": (["Blessing", "Precious", "Chidinma", "Joy", "Favour"], ["Osagie", "Emeka", "Uche"]),
    "ER": (["Selam", "Helen", "Senait"], ["Yonas", "Dawit", "Filmon"]),
    "UA": (["Oksana", "Olena", "Iryna"], ["Dmytro", "Andrii"]),
    "VN": (["Thi Lan", "Thi Hoa"], ["Van Minh", "Duc Anh", "Van Long"]),
    "MA": (["Fatima", "Salma"], ["Youssef", "Mehdi", "Anouar"]),
    "SY": (["Rana", "Nour"], ["Ahmad", "Khaled"]),
    "BR": (["Ana Luíza", "Thaís"], ["João", "Thiago"]),
    "UG": (["Grace", "Harriet"], ["Moses", "Ronald"]),
    "CN": (["Mei", "Xiu"], ["Wei", "Jun"]),
}
GIVEN[""] = GIVEN["NL"]  # nationality unknown

# Made-up surname parts: clearly fictional, with a national flavour.
SURNAME_PARTS = {
    "NL": (["Proef", "Oefen", "Fictie", "Demo", "Voorbeeld", "Schijn", "Verzin", "Test", "Droom", "Nep"],
           ["stra", "man", "berg", "huis", "veld", "ink", "sma", "horst", "kamp", "dijk", "aël", "ée"]),
    "PL": (["Demo", "Test", "Proef", "Wzor"], ["wska", "ewicz", "czyk", "wski", "iak"]),
    "RO": (["Proef", "Demo", "Test"], ["escu", "eanu", "ache"]),
    "BG": (["Demo", "Proef", "Test"], ["ova", "eva", "ov"]),
    "HU": (["Proef", "Demo"], ["ényi", "ódi", "ász"]),
    "LT": (["Demo", "Test"], ["aite", "enas"]),
    "NG": (["Demo", "Oefe", "Fikti", "Tes"], ["wale", "nna", "madu", "ola"]),
    "ER": (["Test", "Demo"], ["haile", "tesfa", "ghebre"]),
    "UA": (["Dem", "Proef", "Test"], ["enko", "chuk", "iv"]),
    "VN": (["Demo", "Test"], ["yen", "ran", "am"]),
    "MA": (["El Proef", "Ben Demo", "El Test"], ["i", "ani", "aoui"]),
    "SY": (["Al-Demo", "Al-Proef"], ["i", "an"]),
    "BR": (["Demo", "Proef"], ["reira", "eira", "ntes"]),
    "UG": (["Demo", "Test"], ["mugisha", "kato"]),
    "CN": (["Demo", "Test"], ["ang", "ing"]),
}
SURNAME_PARTS[""] = SURNAME_PARTS["NL"]

# Dutch adjective of nationality, as a shelter writes it.
NATIONALITY_NL = {
    "NL": "Nederlandse", "PL": "Poolse", "RO": "Roemeense", "BG": "Bulgaarse", "HU": "Hongaarse", "LT": "Litouwse",
    "NG": "Nigeriaanse", "ER": "Eritrese", "UA": "Oekraïense", "VN": "Vietnamese", "MA": "Marokkaanse",
    "SY": "Syrische", "BR": "Braziliaanse", "UG": "Oegandese", "CN": "Chinese", "": "Onbekend",
}

FORMS = ("sexual", "labour", "criminal", "organ_removal", "other_unknown")


@dataclass(frozen=True)
class Person:
    family_name: str
    given_names: str
    date_of_birth: dt.date | None
    gender: str  # female | male | other | unknown
    nationality: str  # ISO 3166-1 alpha-2, "" when unknown
    form: str


def pick(rng: random.Random, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()), k=1)[0]


def random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def birth_date_for_age(rng: random.Random, age: int, on: dt.date) -> dt.date:
    latest = on.replace(year=on.year - age)
    return latest - dt.timedelta(days=rng.randrange(365))


def make_person(rng: random.Random, nationality: str, form: str, age: int, gender: str, on: dt.date) -> Person:
    female, male = GIVEN[nationality]
    names = female if gender == "female" else male if gender == "male" else female + male
    given = rng.choice(names)
    if rng.random() < 0.2:
        second = rng.choice(names)
        if second != given:
            given = f"{given} {second}"
    first, last = SURNAME_PARTS[nationality]
    family = rng.choice(first) + rng.choice(last)
    if nationality in ("NL", "") and rng.random() < 0.25:
        family = rng.choice(["van ", "de ", "van der "]) + family
    return Person(family, given, birth_date_for_age(rng, age, on), gender, nationality, form)


# ---------------------------------------------------------------- police-oost (investigative)

# Chosen: police unit "Oost" (Gelderland, Overijssel). docs/figures.md: labour exploitation 17-43% of reports, sexual
# exploitation of people without a Dutch passport plus criminal exploitation about half, Dutch victims 11%+ with many
# minors; vulnerable groups are labour migrants (EU) and non-EU migrants without residence status.
POLICE_FORMS = {"sexual": 38, "labour": 36, "criminal": 18, "organ_removal": 1, "other_unknown": 7}
POLICE_NATIONALITY = {
    "NL": 22, "PL": 12, "RO": 10, "BG": 6, "HU": 4, "LT": 3,
    "NG": 9, "ER": 4, "UA": 7, "VN": 5, "MA": 4, "SY": 3, "BR": 3, "UG": 3, "CN": 3, "": 2,
}
POLICE_FORM_LABEL = {
    "sexual": "Sexual exploitation", "labour": "Labour exploitation", "criminal": "Criminal exploitation",
    "organ_removal": "Organ removal", "other_unknown": "Other/unknown",
}
POLICE_SEX = {"female": "F", "male": "M", "other": "X", "unknown": "U"}
POLICE_REMARKS = {
    "sexual": ["Found during check of licensed premises", "Online advertisement traced, victim interviewed",
               "Referred by care coordinator", "Victim came forward, statement taken", ""],
    "labour": ["Found during labour inspection at distribution centre, with inspectorate",
               "Came forward after losing job, housing and residence permit", "Greenhouse raid, several workers",
               "Car wash check", ""],
    "criminal": ["Arrested as drug courier, signals of exploitation", "Shoplifting on order of others",
                 "Signals from school, minor recruited for drug running", ""],
    "organ_removal": ["Information from hospital, investigation ongoing"],
    "other_unknown": ["Form not yet established", "Forced begging, under review", ""],
}


def police_person(rng: random.Random, on: dt.date) -> Person:
    form = pick(rng, POLICE_FORMS)
    nationality = pick(rng, POLICE_NATIONALITY)
    if form == "sexual":
        gender = pick(rng, {"female": 88, "male": 10, "other": 2})
    elif form == "labour":
        gender = pick(rng, {"female": 30, "male": 70})
    else:
        gender = pick(rng, {"female": 35, "male": 63, "unknown": 2})
    # Minors are mostly Dutch victims of sexual or criminal exploitation (docs/figures.md); about 15% overall (chosen).
    minor_chance = 0.50 if nationality == "NL" and form in ("sexual", "criminal") else 0.08
    if rng.random() < minor_chance:
        age = rng.randint(13, 17)
    else:
        age = min(int(rng.gammavariate(2.2, 6.0)) + 18, 66)
    return make_person(rng, nationality, form, age, gender, on)


def build_police(rng: random.Random) -> tuple[list[dict], list[tuple[Person, str, dt.date]]]:
    """Rows of the police export, and (person, subject id, report date) of everyone in it."""
    people = []
    subject_ids = rng.sample(range(100_000, 999_999), 290)
    for i in range(285):
        reported = random_date(rng, dt.date(YEAR, 1, 2), dt.date(YEAR, 12, 22))
        person = police_person(rng, reported)
        if rng.random() < 0.03:  # date of birth not established
            person = replace(person, date_of_birth=None)
        people.append((person, f"S{subject_ids[i]}", reported))
    events = [(p, sid, day) for p, sid, day in people]
    for person, sid, first in rng.sample(people, 15):  # a second report in the same year
        later = first + dt.timedelta(days=rng.randint(20, 200))
        if later.year == YEAR:
            events.append((person, sid, later))
    events.sort(key=lambda e: (e[2], e[1]))
    rows = []
    for n, (person, sid, day) in enumerate(events, start=1):
        rows.append({
            "Case No": f"OOST-{YEAR}-{n:04d}",
            "Subject ID": sid,
            "Surname": person.family_name,
            "First names": person.given_names,
            "Date of birth": person.date_of_birth.isoformat() if person.date_of_birth else "",
            "Reported on": day.isoformat(),
            "Exploitation type": POLICE_FORM_LABEL[person.form],
            "Sex": POLICE_SEX[person.gender],
            "Nationality (ISO)": person.nationality or "UNK",
            "Region": pick(rng, {"Gelderland": 55, "Overijssel": 40, "Utrecht": 2, "Flevoland": 2, "Unknown": 1}),
            "Remarks": rng.choice(POLICE_REMARKS[person.form]),
        })
    return rows, people


# ---------------------------------------------------------------- shelter-noord (non-investigative)

# Chosen: a shelter in the north (Groningen, Friesland, Drenthe); mostly women; low consent rate (~25%).
SHELTER_FORMS = {"sexual": 55, "labour": 25, "criminal": 13, "other_unknown": 7}
SHELTER_FORM_LABEL = {
    "sexual": ["seksuele uitbuiting", "Seksuele uitbuiting"],
    "labour": ["arbeidsuitbuiting", "Arbeidsuitbuiting"],
    "criminal": ["criminele uitbuiting"],
    "organ_removal": ["orgaanverwijdering"],
    "other_unknown": ["onbekend", "Overig"],
}
SHELTER_NATIONALITY = {"NL": 30, "PL": 10, "RO": 10, "BG": 6, "HU": 4, "NG": 14, "ER": 8, "UA": 8, "MA": 4, "SY": 3, "": 3}
SHELTER_GENDER = {"female": "vrouw", "male": "man", "other": "anders", "unknown": "onbekend"}
SHELTER_STATUS = ["Cliënt in opvang", "Cliënt uitgestroomd", "Doorverwezen naar zorg", "Cliënt in opvang"]
SHELTER_NOTES = [
    "Aangemeld via politie; café-eigenaar als werkgever",
    'Cliënt wil "voorlopig" geen aangifte doen',
    "Doorverwezen naar zorgcoördinator, intake gepland",
    "Heeft hulp gezocht na verlies van werk en woning",
    "Spreekt alleen Engels; tolk geregeld",
    "Eerder in opvang geweest, opnieuw aangemeld",
    "",
    "",
]


def shelter_person(rng: random.Random, on: dt.date) -> Person:
    form = pick(rng, SHELTER_FORMS)
    nationality = pick(rng, SHELTER_NATIONALITY)
    gender = pick(rng, {"female": 84, "male": 14, "other": 2}) if form == "sexual" else pick(rng, {"female": 55, "male": 45})
    age = rng.randint(16, 17) if rng.random() < 0.07 else min(int(rng.gammavariate(2.0, 6.0)) + 18, 60)
    return make_person(rng, nationality, form, age, gender, on)


def build_shelter(rng: random.Random, police_people: list) -> tuple[list[dict], list[int]]:
    """Rows of the shelter export (with 3 invalid rows) and the positions of the invalid rows."""
    # 24 people known to the police as well: same names and date of birth, reported later at the shelter.
    known = [p for p in police_people if p[0].date_of_birth is not None and p[0].form != "organ_removal"]
    shared = rng.sample(known, 24)
    intakes = []  # (person, client number, intake date, consent, consent date, withdrawn date)
    client_numbers = iter(rng.sample(range(10_000, 99_999), 200))
    for person, _sid, reported in shared:
        day = min(reported + dt.timedelta(days=rng.randint(1, 60)), dt.date(YEAR, 12, 30))
        intakes.append([person, f"C{next(client_numbers)}", day, rng.random() < 0.5])
    for _ in range(86):
        day = random_date(rng, dt.date(YEAR, 1, 3), dt.date(YEAR, 12, 20))
        person = shelter_person(rng, day)
        if rng.random() < 0.06:  # date of birth unknown; age as told at intake
            person = replace(person, date_of_birth=None)
        intakes.append([person, f"C{next(client_numbers)}", day, rng.random() < 0.19])
    for first in rng.sample(intakes[:], 8):  # a second intake row for the same client
        later = first[2] + dt.timedelta(days=rng.randint(30, 150))
        if later.year == YEAR:
            intakes.append([first[0], first[1], later, rng.random() < 0.3])
    intakes.sort(key=lambda i: (i[2], i[1]))

    rows = []
    withdrawn_left = 2
    for n, (person, client, day, consent) in enumerate(intakes, start=1):
        consent_date = withdrawn = ""
        if consent:
            given = day + dt.timedelta(days=rng.randint(0, 21))
            consent_date = min(given, dt.date(YEAR, 12, 31)).strftime("%d-%m-%Y")
            if withdrawn_left and rng.random() < 0.1:
                withdrawn_left -= 1
                withdrawn = min(given + dt.timedelta(days=rng.randint(10, 60)), dt.date(YEAR, 12, 31)).strftime("%d-%m-%Y")
        born = person.date_of_birth
        age = age_on(born, day) if born else rng.randint(19, 45)
        rows.append({
            "Intakenummer": f"IN{YEAR % 100}-{n:03d}",
            "Cliëntnummer": client,
            "Achternaam": person.family_name,
            "Voornamen": person.given_names,
            "Geboortedatum": born.strftime("%d-%m-%Y") if born else "",
            "Leeftijd": str(age),
            "Datum aanmelding": day.strftime("%d-%m-%Y"),
            "Vorm van uitbuiting": rng.choice(SHELTER_FORM_LABEL[person.form]),
            "Geslacht": SHELTER_GENDER[person.gender],
            "Nationaliteit": NATIONALITY_NL[person.nationality],
            "Provincie": pick(rng, {"Groningen": 50, "Fryslân": 25, "Friesland": 5, "Drenthe": 20}),
            "Toestemming": "ja" if consent else "nee",
            "Datum toestemming": consent_date,
            "Toestemming ingetrokken": withdrawn,
            "Status": rng.choice(SHELTER_STATUS),
            "Opmerkingen": rng.choice(SHELTER_NOTES),
        })

    # Three deliberately broken rows, so `aggregator validate` has something to show.
    broken = []
    for position, fault in ((37, "consent-date"), (74, "form"), (101, "age")):
        day = random_date(rng, dt.date(YEAR, 3, 1), dt.date(YEAR, 10, 1))
        person = shelter_person(rng, day)
        row = dict(rows[0])
        row.update({
            "Intakenummer": f"IN{YEAR % 100}-X{len(broken) + 1}",
            "Cliëntnummer": f"C{next(client_numbers)}",
            "Achternaam": person.family_name,
            "Voornamen": person.given_names,
            "Geboortedatum": person.date_of_birth.strftime("%d-%m-%Y"),
            "Leeftijd": str(age_on(person.date_of_birth, day)),
            "Datum aanmelding": day.strftime("%d-%m-%Y"),
            "Vorm van uitbuiting": rng.choice(SHELTER_FORM_LABEL[person.form]),
            "Geslacht": SHELTER_GENDER[person.gender],
            "Nationaliteit": NATIONALITY_NL[person.nationality],
            "Toestemming": "nee", "Datum toestemming": "", "Toestemming ingetrokken": "",
            "Opmerkingen": "",
        })
        if fault == "consent-date":  # typo: 2052 for 2025, after any export date
            row.update({"Toestemming": "ja", "Datum toestemming": day.strftime("%d-%m-") + "2052"})
        elif fault == "form":  # smuggling is not a form of exploitation in the codelist
            row["Vorm van uitbuiting"] = "mensensmokkel"
        else:
            row.update({"Geboortedatum": "", "Leeftijd": "130"})
        rows.insert(position, row)
        broken.append(position)
    return rows, broken


# ---------------------------------------------------------------- helpline-chat (anonymous chat)

# docs/figures.md: 285 victims a year through the anonymous chat; about three quarters still in the situation; nearly
# 1 in 5 younger than 15; mostly girls, boys rising; 16% of sexual-exploitation victims name a parent as perpetrator.
# Chosen: mostly sexual exploitation; consent to registration rare (~4%); nationality and province mostly unknown.
CHAT_AGE = {"under_15": 19, "15_17": 36, "18_24": 28, "25_plus": 9, "unknown": 8}
CHAT_FORM = {"seksuele uitbuiting": 62, "loverboyproblematiek": 14, "criminele uitbuiting": 6, "drugskoerier": 4,
             "arbeidsuitbuiting": 5, "onbekend": 9}
CHAT_NOTES = ["Wil anoniem blijven", "Tips voor veilig contact gegeven", "Verwezen naar hulpverlening in de regio",
              "Gesprek afgebroken", "Vervolggesprek afgesproken", "", "", ""]
PROVINCES = ["Groningen", "Friesland", "Drenthe", "Overijssel", "Flevoland", "Gelderland", "Utrecht",
             "Noord-Holland", "Zuid-Holland", "Zeeland", "Noord-Brabant", "Limburg"]


def build_helpline(rng: random.Random) -> list[list]:
    chatters = []
    for _ in range(252):
        band = pick(rng, CHAT_AGE)
        age = {"under_15": rng.randint(11, 14), "15_17": rng.randint(15, 17), "18_24": rng.randint(18, 24),
               "25_plus": rng.randint(25, 40), "unknown": None}[band]
        girl = rng.random() < 0.85
        if age is not None and age < 18:
            gender = "meisje" if girl else "jongen"
        else:
            gender = pick(rng, {"vrouw": 80, "man": 12, "anders": 3, "onbekend": 5}) if girl else "man"
        chat_id = "chat-" + "".join(rng.choice("0123456789abcdef") for _ in range(6))
        chatters.append((chat_id, age, gender, pick(rng, CHAT_FORM)))
    sessions = [(c, random_date(rng, dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))) for c in chatters]
    for c in rng.sample(chatters, 32):  # returning chatters
        sessions.append((c, random_date(rng, dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))))
    sessions.sort(key=lambda s: (s[1], s[0][0]))
    rows = []
    for n, ((chat_id, age, gender, form), day) in enumerate(sessions, start=1):
        consent = rng.random() < 0.04
        sexual = form in ("seksuele uitbuiting", "loverboyproblematiek")
        rows.append([
            f"G{YEAR % 100}-{n:04d}",
            chat_id,
            day,
            age,
            gender,
            form,
            pick(rng, {"nog in uitbuiting": 75, "eruit": 18, "onbekend": 7}),
            ("ja" if rng.random() < 0.16 else "nee") if sexual else None,
            rng.choice(PROVINCES) if rng.random() < 0.25 else None,
            "Nederlands" if rng.random() < 0.2 else None,
            "ja" if consent else "nee",
            min(day + dt.timedelta(days=rng.randint(0, 3)), dt.date(YEAR, 12, 31)) if consent else None,
            rng.choice(CHAT_NOTES) or None,
        ])
    return rows


HELPLINE_HEADER = ["Gesprek-nr", "Chat-ID", "Datum gesprek", "Leeftijd", "Gender", "Vorm", "Situatie",
                   "Dader ouder(s)", "Provincie", "Nationaliteit", "Toestemming registratie", "Datum toestemming",
                   "Notitie"]


# ---------------------------------------------------------------- writers


def csv_text(rows: list[dict], delimiter: str) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_xlsx(path: Path, rows: list[list]) -> None:
    import openpyxl
    from openpyxl.styles import Font

    wb = openpyxl.Workbook()
    about = wb.active
    about.title = "Toelichting"
    for line in [
        ["Chatdienst (fictief): gesprekken 2025"],
        ["Synthetische voorbeelddata; geen echte personen of gesprekken."],
        ["De gegevens staan op het blad 'Chats 2025'."],
    ]:
        about.append(line)
    sheet = wb.create_sheet("Chats 2025")
    sheet.append(HELPLINE_HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    for row in sheet.iter_rows(min_row=2):
        for index in (2, 11):
            row[index].number_format = "dd-mm-yyyy"
    wb.properties.creator = "make_examples.py"
    wb.properties.created = wb.properties.modified = FIXED_TIME
    buffer = io.BytesIO()
    wb.save(buffer)
    # openpyxl stamps the ZIP members and the "modified" property with the current time: rewrite both with a fixed
    # time so the file is reproducible.
    fixed = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(<)", rb"\g<1>" + fixed + rb"\g<2>", data)
            stamped = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            stamped.compress_type = zipfile.ZIP_DEFLATED
            stamped.external_attr = 0o644 << 16
            dst.writestr(stamped, data)


def build(out: Path) -> list[Path]:
    rng = random.Random(SEED)
    police_rows, police_people = build_police(rng)
    shelter_rows, broken = build_shelter(rng, police_people)
    chats = build_helpline(rng)

    written = []
    police = out / "police-oost" / "export-2025.csv"
    shelter = out / "shelter-noord" / "export-2025.csv"
    clean = out / "shelter-noord" / "export-2025-clean.csv"
    chat = out / "helpline-chat" / "export-2025.xlsx"
    for path in (police, shelter, clean, chat):
        path.parent.mkdir(parents=True, exist_ok=True)
    police.write_bytes(csv_text(police_rows, ",").encode("utf-8"))
    shelter.write_bytes(csv_text(shelter_rows, ";").encode("cp1252"))
    clean_rows = [r for i, r in enumerate(shelter_rows) if i not in broken]
    clean.write_bytes(csv_text(clean_rows, ";").encode("cp1252"))
    write_xlsx(chat, chats)
    written.extend([police, shelter, clean, chat])
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: examples/)")
    args = parser.parse_args()
    for path in build(args.out):
        print(path)


if __name__ == "__main__":
    main()
