"""The synthetic organisations: who they are, whom they meet, how big they are and how they write their export."""

from __future__ import annotations

from dataclasses import dataclass, field

# Police regional units and the provinces (or shares of a province) they cover; the care coordinators follow them.
REGIONS = [
    ("noord-nederland", "Noord-Nederland", {"NL-GR": 1.0, "NL-FR": 1.0, "NL-DR": 1.0}),
    ("oost-nederland", "Oost-Nederland", {"NL-OV": 1.0, "NL-GE": 1.0}),
    ("midden-nederland", "Midden-Nederland", {"NL-UT": 1.0, "NL-FL": 1.0}),
    ("noord-holland", "Noord-Holland", {"NL-NH": 0.4}),
    ("amsterdam", "Amsterdam", {"NL-NH": 0.6}),
    ("den-haag", "Den Haag", {"NL-ZH": 0.5}),
    ("rotterdam", "Rotterdam", {"NL-ZH": 0.5}),
    ("zeeland-west-brabant", "Zeeland-West-Brabant", {"NL-ZE": 1.0, "NL-NB": 0.5}),
    ("oost-brabant", "Oost-Brabant", {"NL-NB": 0.5}),
    ("limburg", "Limburg", {"NL-LI": 1.0}),
]


# ------------------------------------------------------------------------------------------------ organisations

@dataclass(frozen=True)
class OrgSpec:
    """One synthetic organisation: who it is, whom it meets, how it writes its export."""

    id: str
    name: str
    kind: str  # investigative | non_investigative
    reporter_type: str
    profile: str  # whom it meets (see _affinity)
    size: float  # relative caseload weight
    region: dict[str, float] = field(default_factory=dict)  # province -> share served; empty = national
    style: str = "care_en"  # export style (see STYLES)
    consent_rate: tuple[float, float] = (0.0, 0.0)  # range the organisation's own rate is drawn from
    keeps_duplicates: bool = False


def _organisations() -> list[OrgSpec]:
    orgs: list[OrgSpec] = []
    for slug, name, region in REGIONS:
        orgs.append(OrgSpec(f"politie-{slug}", f"Politie eenheid {name}", "investigative", "police", "police", 1.0,
                            region, "police", keeps_duplicates=slug in ("rotterdam", "oost-nederland")))
    orgs.append(OrgSpec("kmar", "Koninklijke Marechaussee", "investigative", "military_police", "border", 1.0, {},
                        "kmar"))
    orgs.append(OrgSpec("arbeidsinspectie", "Arbeidsinspectie", "investigative", "labour_inspectorate", "labour", 1.0,
                        {}, "inspectie"))
    # Care coordination: one per police region; the consent rates they reach are the highest of the
    # non-investigative organisations (plausible).
    for i, (slug, name, region) in enumerate(REGIONS):
        orgs.append(OrgSpec(f"zorgcoordinatie-{slug}", f"Zorgcoördinatie {name}", "non_investigative",
                            "care_coordination", "care", 2.4, region, "care_en" if i % 2 == 0 else "care_nl",
                            (0.05, 0.14), keeps_duplicates=i in (1, 4)))
    shelters = [
        ("opvang-cosm-west", "Categorale opvang West", "foreign_adults", 1.5, ["NL-NH", "NL-ZH", "NL-UT", "NL-FL"], "shelter_en_tab"),
        ("opvang-cosm-zuid", "Categorale opvang Zuid", "foreign_adults", 1.6, ["NL-NB", "NL-LI", "NL-ZE"], "shelter_xlsx"),
        ("opvang-cosm-noordoost", "Categorale opvang Noord-Oost", "foreign_adults", 1.4,
         ["NL-GE", "NL-OV", "NL-GR", "NL-FR", "NL-DR"], "shelter_en_tab"),
        ("jeugdopvang-noord", "Jeugdopvang De Vuurtoren", "youth_sexual", 2.0, ["NL-GR", "NL-FR", "NL-DR", "NL-OV"], "youth_nl"),
        ("jeugdopvang-west", "Jeugdopvang Het Anker", "youth_sexual", 2.6, ["NL-NH", "NL-ZH", "NL-UT", "NL-FL"], "youth_nl"),
        ("jeugdopvang-zuid", "Jeugdopvang De Brug", "youth_sexual", 2.0, ["NL-NB", "NL-LI", "NL-ZE", "NL-GE"], "youth_nl"),
        ("mannenopvang", "Mannenopvang Onderdak", "men", 0.6, [], "care_en"),
        ("vrouwenopvang-amsterdam", "Vrouwenopvang Amsterdam", "women", 1.6, ["NL-NH"], "care_nl"),
        ("vrouwenopvang-rotterdam", "Vrouwenopvang Rijnmond", "women", 1.6, ["NL-ZH"], "care_nl"),
        ("vrouwenopvang-midden", "Vrouwenopvang Midden", "women", 1.4, ["NL-UT", "NL-GE", "NL-FL"], "shelter_en_tab"),
        ("vrouwenopvang-noord", "Vrouwenopvang Noord", "women", 1.0, ["NL-GR", "NL-FR", "NL-DR", "NL-OV"], "care_nl"),
        ("opvang-arbeidsmigranten", "Opvang Arbeidsmigranten", "labour_shelter", 1.2,
         ["NL-NB", "NL-LI", "NL-GE", "NL-ZH"], "shelter_xlsx"),
    ]
    for i, (org_id, name, profile, size, provinces, style) in enumerate(shelters):
        orgs.append(OrgSpec(org_id, name, "non_investigative", "shelter", profile, size,
                            {p: 1.0 for p in provinces}, style, (0.04, 0.12), keeps_duplicates=i in (0, 4)))
    municipalities = [  # (city, province, share of the province's victims who come to this city's desk) - plausible
        ("amsterdam", "Amsterdam", "NL-NH", 0.55), ("rotterdam", "Rotterdam", "NL-ZH", 0.40),
        ("den-haag", "Den Haag", "NL-ZH", 0.30), ("utrecht", "Utrecht", "NL-UT", 0.50),
        ("eindhoven", "Eindhoven", "NL-NB", 0.25), ("groningen", "Groningen", "NL-GR", 0.50),
        ("tilburg", "Tilburg", "NL-NB", 0.15), ("almere", "Almere", "NL-FL", 0.40),
        ("breda", "Breda", "NL-NB", 0.12), ("nijmegen", "Nijmegen", "NL-GE", 0.20),
        ("enschede", "Enschede", "NL-OV", 0.30), ("maastricht", "Maastricht", "NL-LI", 0.30),
        ("leeuwarden", "Leeuwarden", "NL-FR", 0.35), ("emmen", "Emmen", "NL-DR", 0.30),
        ("middelburg", "Middelburg", "NL-ZE", 0.25),
    ]
    muni_styles = {"amsterdam": "muni_parquet", "utrecht": "muni_tab", "groningen": "muni_tab",
                   "eindhoven": "muni_mixed_dates", "almere": "care_en"}
    for i, (slug, name, province, share) in enumerate(municipalities):
        orgs.append(OrgSpec(f"gemeente-{slug}", f"Gemeente {name}", "non_investigative", "municipality",
                            "municipality", 1.3, {province: share}, muni_styles.get(slug, "muni_nl"), (0.03, 0.10),
                            keeps_duplicates=slug in ("rotterdam", "tilburg")))
    orgs.append(OrgSpec("chat-hulplijn", "Chat-hulplijn (anoniem)", "non_investigative", "help_line", "help_line", 0.0,
                        {}, "chat_json", (0.0, 0.0), keeps_duplicates=True))
    orgs.append(OrgSpec("steunpunt-arbeidsmigranten", "Steunpunt Arbeidsmigranten", "non_investigative", "other",
                        "labour_ngo", 1.6, {}, "ngo_en", (0.04, 0.10)))
    orgs.append(OrgSpec("jeugdzorg-landelijk", "Landelijke Jeugdzorg", "non_investigative", "other", "youth_care", 1.5,
                        {}, "youth_xlsx", (0.03, 0.08)))
    return orgs


ORGANISATIONS = _organisations()
