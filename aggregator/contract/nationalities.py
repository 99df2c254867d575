"""Dutch nationality words and codes onto ISO 3166-1 alpha-2, from the BRP's own table (Landelijke Tabel 32).

Dutch case systems export the nationality as the BRP describes it ("Poolse", "Marokkaanse", "Brits burger") or
as its four-digit BRP code ("0072"). `data/brp-tabel32-nationaliteiten.csv` is Tabel 32 as published by RvIG;
`data/brp-tabel32-iso3166.csv` maps its codes onto ISO 3166-1 alpha-2 (derived for this project). Every word and
code of the table is known: those with no country (Onbekend, Staatloos, former states such as Joegoslavische,
Kosovaarse as Kosovo has no ISO code) map to unknown. Source, date and choices: `data/README.md`.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
BRP_TABLE = DATA / "brp-tabel32-nationaliteiten.csv"
BRP_TO_ISO = DATA / "brp-tabel32-iso3166.csv"

# Everyday short forms that Dutch exports use beside the table's formal descriptions.
SHORT_FORMS = {
    "duitse": "DE", "britse": "GB", "amerikaanse": "US", "bosnische": "BA", "noord-macedonische": "MK",
    "oekraiense": "UA", "israelische": "IL", "haitiaanse": "HT",
}


@lru_cache(maxsize=1)
def brp_table() -> list[tuple[str, str, str]]:
    """(four-digit code, description, ISO alpha-2 or "" for unknown) for every entry of Tabel 32."""
    with BRP_TO_ISO.open(encoding="utf-8", newline="") as fh:
        iso = {row[0]: row[1] for row in csv.reader(line for line in fh if not line.startswith("#"))}
    with BRP_TABLE.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [(code, description, iso.get(code, "")) for code, description, *_ in rows]


@lru_cache(maxsize=1)
def nationality_aliases() -> dict[str, str]:
    """Lower-cased export value -> ISO alpha-2 ("" = unknown): descriptions, four-digit codes, codes without
    their leading zeros (as a spreadsheet shows "0072"), and the everyday short forms."""
    aliases: dict[str, str] = {}
    for code, description, iso in brp_table():
        aliases[description.strip().lower()] = iso
        aliases[code] = iso
        aliases.setdefault(code.lstrip("0") or "0", iso)
    for word, iso in SHORT_FORMS.items():
        aliases.setdefault(word, iso)
    return aliases
