"""Release dimensions, version 1 (docs/architecture.md): codes with English and Dutch labels.

The set of cells released for counts without a lawful basis is fixed by these lists, never by the data.
"""

from __future__ import annotations

from enum import Enum

CODELIST_VERSION = 1


class Form(str, Enum):
    sexual = "sexual"
    labour = "labour"
    criminal = "criminal"
    organ_removal = "organ_removal"
    other_unknown = "other_unknown"


class AgeBand(str, Enum):
    under_15 = "under_15"
    age_15_17 = "15_17"
    age_18_24 = "18_24"
    age_25_plus = "25_plus"
    unknown = "unknown"


class Gender(str, Enum):
    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class NationalityGroup(str, Enum):
    NL = "NL"
    EU = "EU"
    non_EU = "non_EU"
    unknown = "unknown"


class Province(str, Enum):
    DR = "NL-DR"
    FL = "NL-FL"
    FR = "NL-FR"
    GE = "NL-GE"
    GR = "NL-GR"
    LI = "NL-LI"
    NB = "NL-NB"
    NH = "NL-NH"
    OV = "NL-OV"
    UT = "NL-UT"
    ZE = "NL-ZE"
    ZH = "NL-ZH"
    unknown = "unknown"


class OrgKind(str, Enum):
    investigative = "investigative"
    non_investigative = "non_investigative"


class ReporterType(str, Enum):
    police = "police"
    military_police = "military_police"
    labour_inspectorate = "labour_inspectorate"
    care_coordination = "care_coordination"
    shelter = "shelter"
    help_line = "help_line"
    municipality = "municipality"
    other = "other"


INVESTIGATIVE_REPORTERS = frozenset({"police", "military_police", "labour_inspectorate"})

# Release dimensions in their fixed order: name -> codelist.
DIMENSIONS: dict[str, type[Enum]] = {
    "form": Form,
    "age_band": AgeBand,
    "gender": Gender,
    "nationality_group": NationalityGroup,
    "province": Province,
}
MINOR_BANDS = ("under_15", "15_17")


def codes(dimension: str) -> list[str]:
    """The codes of one release dimension, in codelist order."""
    try:
        return [member.value for member in DIMENSIONS[dimension]]
    except KeyError:
        raise KeyError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}") from None


LABELS: dict[str, dict[str, tuple[str, str]]] = {
    # dimension -> code -> (English, Dutch)
    "form": {
        "sexual": ("Sexual exploitation", "Seksuele uitbuiting"),
        "labour": ("Labour exploitation", "Arbeidsuitbuiting"),
        "criminal": ("Criminal exploitation", "Criminele uitbuiting"),
        "organ_removal": ("Organ removal", "Orgaanverwijdering"),
        "other_unknown": ("Other / unknown", "Overig / onbekend"),
    },
    "age_band": {
        "under_15": ("Under 15", "Jonger dan 15"),
        "15_17": ("15-17", "15-17"),
        "18_24": ("18-24", "18-24"),
        "25_plus": ("25 and over", "25 en ouder"),
        "unknown": ("Unknown", "Onbekend"),
    },
    "gender": {
        "female": ("Female", "Vrouw"),
        "male": ("Male", "Man"),
        "other": ("Other", "Anders"),
        "unknown": ("Unknown", "Onbekend"),
    },
    "nationality_group": {
        "NL": ("Dutch", "Nederlands"),
        "EU": ("Other EU", "Overig EU"),
        "non_EU": ("Non-EU", "Niet-EU"),
        "unknown": ("Unknown", "Onbekend"),
    },
    "province": {
        "NL-DR": ("Drenthe", "Drenthe"),
        "NL-FL": ("Flevoland", "Flevoland"),
        "NL-FR": ("Friesland", "Fryslân"),
        "NL-GE": ("Gelderland", "Gelderland"),
        "NL-GR": ("Groningen", "Groningen"),
        "NL-LI": ("Limburg", "Limburg"),
        "NL-NB": ("North Brabant", "Noord-Brabant"),
        "NL-NH": ("North Holland", "Noord-Holland"),
        "NL-OV": ("Overijssel", "Overijssel"),
        "NL-UT": ("Utrecht", "Utrecht"),
        "NL-ZE": ("Zeeland", "Zeeland"),
        "NL-ZH": ("South Holland", "Zuid-Holland"),
        "unknown": ("Unknown", "Onbekend"),
    },
    "kind": {
        "investigative": ("Investigative (statutory)", "Opsporingsinstantie (wettelijk)"),
        "non_investigative": ("Non-investigative (consent)", "Niet-opsporingsinstantie (toestemming)"),
    },
    "reporter_type": {
        "police": ("Police", "Politie"),
        "military_police": ("Military police", "Koninklijke Marechaussee"),
        "labour_inspectorate": ("Labour inspectorate", "Arbeidsinspectie"),
        "care_coordination": ("Care coordination", "Zorgcoördinatie"),
        "shelter": ("Shelter", "Opvang"),
        "help_line": ("Help line", "Hulplijn"),
        "municipality": ("Municipality", "Gemeente"),
        "other": ("Other", "Overig"),
    },
}

DIMENSION_LABELS: dict[str, tuple[str, str]] = {
    "period": ("Period", "Periode"),
    "form": ("Form of exploitation", "Vorm van uitbuiting"),
    "age_band": ("Age band", "Leeftijdsgroep"),
    "gender": ("Gender", "Geslacht"),
    "nationality_group": ("Nationality group", "Nationaliteitsgroep"),
    "province": ("Province", "Provincie"),
    "kind": ("Organisation kind", "Soort organisatie"),
    "reporter_type": ("Reporter type", "Soort melder"),
}


def label(dimension: str, code: str, lang: str = "en") -> str:
    """Human label of a code in English or Dutch; the code itself when no label exists."""
    pair = LABELS.get(dimension, {}).get(code)
    if pair is None:
        return code
    return pair[1] if lang == "nl" else pair[0]


def dimension_label(dimension: str, lang: str = "en") -> str:
    pair = DIMENSION_LABELS.get(dimension, (dimension, dimension))
    return pair[1] if lang == "nl" else pair[0]


# Values an export may carry, mapped onto codes, before any organisation-specific mapping.
# Keys are compared after trim + casefold.
DEFAULT_VALUE_ALIASES: dict[str, dict[str, str]] = {
    "form": {
        "seksuele uitbuiting": "sexual", "seksueel": "sexual", "sexual exploitation": "sexual",
        "arbeidsuitbuiting": "labour", "arbeid": "labour", "labour exploitation": "labour", "labor": "labour",
        "criminele uitbuiting": "criminal", "crimineel": "criminal", "criminal exploitation": "criminal",
        "orgaanverwijdering": "organ_removal", "organ removal": "organ_removal",
        "overig": "other_unknown", "onbekend": "other_unknown", "other": "other_unknown", "unknown": "other_unknown",
        "overig/onbekend": "other_unknown",
    },
    "gender": {
        "vrouw": "female", "v": "female", "f": "female", "woman": "female", "meisje": "female",
        "man": "male", "m": "male", "jongen": "male",
        "anders": "other", "x": "other", "non-binair": "other", "non-binary": "other",
        "onbekend": "unknown", "?": "unknown",
    },
    "province": {
        "drenthe": "NL-DR", "flevoland": "NL-FL", "friesland": "NL-FR", "fryslân": "NL-FR",
        "gelderland": "NL-GE", "groningen": "NL-GR", "limburg": "NL-LI", "noord-brabant": "NL-NB",
        "noord-holland": "NL-NH", "overijssel": "NL-OV", "utrecht": "NL-UT", "zeeland": "NL-ZE",
        "zuid-holland": "NL-ZH", "onbekend": "unknown",
    },
    "nationality": {
        "nederlands": "NL", "nederlandse": "NL", "nederland": "NL", "dutch": "NL",
        "onbekend": "", "unknown": "",
    },
    "consent": {
        "ja": "true", "j": "true", "yes": "true", "y": "true", "1": "true", "true": "true",
        "nee": "false", "n": "false", "no": "false", "0": "false", "false": "false",
    },
}

# ISO 3166-1 alpha-2 codes of the EU member states other than NL (EL is the EU's own code for Greece).
EU_OTHER = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR EL HU IE IT LV LT LU MT PL PT RO SK SI ES SE".split()
)

# ISO 3166-1 alpha-2, officially assigned codes.
ISO_3166_ALPHA2 = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO
    JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR
    MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO
    RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV
    TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW""".split()
)


def nationality_group(iso2: str | None) -> str:
    """Nationality group of an ISO 3166-1 alpha-2 code (Eurostat breakdown)."""
    if not iso2:
        return "unknown"
    code = iso2.upper()
    if code == "NL":
        return "NL"
    if code in EU_OTHER:
        return "EU"
    return "non_EU"


def age_band(age: int | None) -> str:
    if age is None:
        return "unknown"
    if age < 15:
        return "under_15"
    if age < 18:
        return "15_17"
    if age < 25:
        return "18_24"
    return "25_plus"
