"""A synthetic nation built from reference/figures.md: true victims, organisations, their exports and mappings.

`make_nation(year, seed, out)` writes
  out/nation.json                         manifest: year, seed, export date, organisations, totals
  out/orgs/<org-id>/export-<year>.<ext>   each organisation's export in its own columns, values, format and encoding
  out/orgs/<org-id>/mapping.toml          the mapping that turns that export into the Registration schema
  out/truth.parquet                       one row per true person: the five release dimensions, which organisations
                                          know them and which of those have a lawful basis at the export date

Everything is fictional. Shares marked "figures.md" come from the public figures; every other number is a plausible
choice, said so next to it. Generation uses `random.Random` streams derived from (seed, year), so the same arguments
give the same bytes.

How the nation hangs together:
  1. people: form of exploitation, nationality, age, gender, province drawn per person;
  2. the anonymous help line picks its ~285 chatters among young (mostly Dutch, mostly female) victims;
  3. investigative bodies detect a small share of people (statutory basis: all their records are shareable);
  4. every person is known to one to three non-investigative organisations (fewer when detected or a chatter),
     chosen by region and by what each organisation does (youth shelter, shelter for foreign victims, ...);
  5. consent is asked at every non-investigative organisation and rarely given, so consent-only registration
     (statutory + consented, distinct people) lands near the real 2018-2020 figures while the truth is far larger.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
import shutil
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .codelists import DEFAULT_VALUE_ALIASES, DIMENSIONS, LABELS, age_band, codes, nationality_group
from .errors import UsageError

SYNTH_VERSION = 1
BASE_POPULATION = 7_000  # people known to >= 1 organisation in a year; brief: ~6,000-8,000 (figures.md: 3,000 Dutch sexual alone)
HELP_LINE_CHATTERS = 285  # figures.md: 285 victims sought help through the anonymous chat in one year
TRUTH_FILE = "truth.parquet"
MANIFEST_FILE = "nation.json"

# ------------------------------------------------------------------------------------------------ the population

FORM_SHARES = {
    "sexual": 0.44,  # figures.md: ~3,000 Dutch sexual victims/yr (the most common form) + foreign victims; plausible
    "labour": 0.30,  # figures.md: 17% (2019) to 43% (2020) of reports; we take a middle value
    "criminal": 0.15,  # not in figures.md: plausible (drug running, theft, forced begging)
    "organ_removal": 0.005,  # figures.md names the form; rare - plausible
    "other_unknown": 0.105,  # not in figures.md: plausible
}

# Nationality group by form. figures.md: Dutch victims dominate sexual exploitation; labour victims are labour
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

# Age band by form and whether Dutch. figures.md: ~1,300 of ~3,000 Dutch sexual victims are minors (43%);
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
GENDER_SHARES = {  # plausible; figures.md: the help line's chatters are mostly girls
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

# Chance that an investigative body detects a person (statutory report). figures.md: in 2018 only 132 Dutch
# sexual-exploitation victims were reported (4.4% of ~3,000), 29 of them minors (2-3% of ~1,300). The rest plausible,
# tuned so that statutory + consented registrations land near the 2018-2020 figures (668 - 1,334).
DETECTION = {
    ("sexual", "NL", True): 0.025, ("sexual", "NL", False): 0.06, ("sexual", "foreign", None): 0.20,
    ("labour", None, None): 0.095, ("criminal", None, None): 0.13,
    ("organ_removal", None, None): 0.45, ("other_unknown", None, None): 0.04,
}

# Number of non-investigative organisations that know a person (plausible): most people are known to one.
NI_CONTACTS_DETECTED = {0: 0.30, 1: 0.50, 2: 0.17, 3: 0.03}  # police refer most victims to care
NI_CONTACTS_OTHERWISE = {1: 0.80, 2: 0.16, 3: 0.04}
NI_CONTACTS_CHATTER = {0: 0.75, 1: 0.20, 2: 0.05}  # figures.md: many chatters are known to no other organisation

WITHDRAWAL_RATE = 0.04  # share of consents withdrawn before the export date; plausible ("a few")
DUPLICATE_RATE = 0.03  # share of people with a second intake row at an organisation that keeps duplicates; plausible


# ------------------------------------------------------------------------------------------------ names (cp1252-safe)

def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


NAME_POOLS: dict[str, tuple[list[str], list[str], list[str]]] = {
    # pool -> (family names, female given names, male given names); only characters cp1252 can encode
    "nl": (
        _split("de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit, Meijer, de Boer, Mulder,"
               "de Groot, Bos, Vos, Peters, Hendriks, van Leeuwen, Dekker, Brouwer, de Wit, Dijkstra, Smits, de Graaf,"
               "van der Meer, van der Linden, Kok, Jacobs, de Haan, Vermeulen, van den Heuvel, van der Veen,"
               "van den Broek, de Bruijn, van der Heijden, Schouten, van Beek, Willems, van Vliet, Hoekstra, Maas,"
               "Verhoeven, Koster, van Dam, Prins, Blom, Huisman, Kuipers, van Wijk, Post, Veenstra, Kramer, Scholten"),
        _split("Emma, Sophie, Julia, Anna, Lisa, Isa, Sanne, Fleur, Eva, Lotte, Noa, Tess, Lieke, Femke, Anouk, Romy,"
               "Iris, Esmée, Chloë, Zoë, Maud, Demi, Britt, Kim, Naomi, Yara, Amber, Jasmijn, Sara, Mila, Anna Maria"),
        _split("Daan, Sem, Lucas, Levi, Finn, Milan, Jesse, Thijs, Lars, Bram, Ruben, Tim, Stijn, Luuk, Sven, Niels,"
               "Jeroen, Ryan, Dylan, Kevin, Joost, Mees, Gijs, Noah, Johannes Petrus"),
    ),
    "pl": (
        _split("Nowak, Kowalski, Wójcik, Kowalczyk, Lewandowski, Mazur, Krawczyk, Kaczmarek, Piotrowski, Grabowski,"
               "Pawlowski, Michalski, Król, Wieczorek, Majewski, Olszewski, Malinowski, Jaworski, Adamczyk, Dudek,"
               "Nowicki, Pawlak, Górski, Witkowski, Walczak, Sikora, Baran, Rutkowski"),
        _split("Anna, Katarzyna, Magdalena, Agnieszka, Joanna, Monika, Ewa, Marta, Aleksandra, Natalia, Karolina, Paulina"),
        _split("Piotr, Krzysztof, Tomasz, Pawel, Michal, Marcin, Lukasz, Jakub, Adam, Kamil, Mateusz, Dawid, Grzegorz"),
    ),
    "ro": (
        _split("Popescu, Ionescu, Popa, Pop, Radu, Dumitru, Stan, Stoica, Gheorghe, Matei, Ciobanu, Rusu, Munteanu,"
               "Constantin, Marin, Dinu, Lazar, Florea, Moldovan, Ilie"),
        _split("Maria, Elena, Ioana, Andreea, Alexandra, Mihaela, Cristina, Gabriela, Roxana, Denisa"),
        _split("Andrei, Alexandru, Ion, Mihai, Gabriel, Florin, Adrian, Ionut, Marius, Bogdan, Stefan, Cristian"),
    ),
    "bg": (
        _split("Ivanov, Georgiev, Dimitrov, Petrov, Nikolov, Hristov, Stoyanov, Todorov, Iliev, Angelov, Kolev, Yordanov"),
        _split("Maria, Ivana, Elena, Desislava, Gergana, Yordanka, Nikol, Viktoria, Radostina, Teodora"),
        _split("Georgi, Ivan, Dimitar, Nikolay, Petar, Hristo, Stoyan, Todor, Kaloyan, Martin"),
    ),
    "hu": (
        _split("Nagy, Kovács, Tóth, Szabó, Horváth, Varga, Kiss, Molnár, Németh, Farkas, Balogh, Papp"),
        _split("Anna, Eszter, Zsófia, Katalin, Réka, Viktória, Nikolett, Dóra"),
        _split("László, István, József, Zoltán, Gábor, Attila, Tamás, Bence"),
    ),
    "ce": (
        _split("Kazlauskas, Jankauskas, Petrauskas, Vasiliauskas, Novák, Horák, Dvorák, Kucera, Svoboda, Baláz"),
        _split("Ruta, Egle, Laura, Jurgita, Petra, Lucie, Zuzana, Jana"),
        _split("Tomas, Mantas, Darius, Lukas, Jan, Martin, Peter, Marek"),
    ),
    "de": (
        _split("Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann, Koch, Schäfer"),
        _split("Lena, Laura, Sarah, Julia, Anna, Lea, Jana, Katrin"),
        _split("Jonas, Leon, Lukas, Felix, Max, Paul, Tobias, Florian"),
    ),
    "ng": (
        _split("Okafor, Adeyemi, Eze, Okonkwo, Adebayo, Nwosu, Ogunleye, Obi, Chukwu, Bello, Osagie, Igbinosa,"
               "Omoregie, Edosa, Okoro, Nnamdi"),
        _split("Blessing, Joy, Precious, Faith, Mercy, Gift, Esther, Favour, Patience, Happiness, Osas, Grace"),
        _split("Chinedu, Emeka, Tunde, Osaro, Samuel, Daniel, Ikenna, Uche, Efosa, Kingsley"),
    ),
    "ua": (
        _split("Shevchenko, Kovalenko, Bondarenko, Tkachenko, Kravchenko, Oliynyk, Melnyk, Boyko, Kovalchuk, Moroz,"
               "Lysenko, Marchenko"),
        _split("Olena, Iryna, Oksana, Nataliia, Yuliia, Kateryna, Tetiana, Anastasiia"),
        _split("Oleksandr, Andrii, Serhii, Dmytro, Volodymyr, Mykola, Ivan, Yurii"),
    ),
    "ar": (
        _split("El Amrani, Benali, El Idrissi, Bakkali, Ouali, El Khatib, Haddad, Al-Hassan, Khalil, Mansour, Hamdan,"
               "Said, Rahimi, Karimi, Benyahia"),
        _split("Fatima, Nadia, Samira, Amina, Yasmina, Salma, Rania, Layla, Noor, Zahra"),
        _split("Mohamed, Ahmed, Youssef, Omar, Karim, Bilal, Hamza, Khaled, Mustafa, Ali"),
    ),
    "er": (
        _split("Tesfay, Gebremedhin, Haile, Kidane, Berhane, Tekle, Mehari, Ghebreyesus, Yohannes, Negash"),
        _split("Senait, Helen, Rahel, Selam, Meron, Luwam, Yordanos, Saba"),
        _split("Yonas, Dawit, Filmon, Samson, Tesfalem, Merhawi, Abraham, Robel"),
    ),
    "vn": (
        _split("Nguyen, Tran, Le, Pham, Hoang, Vu, Phan, Dang, Bui, Do, Ngo, Duong"),
        _split("Thi Lan, Thi Huong, Thi Mai, Thi Hoa, Ngoc Anh, Thu Trang, Thi Hanh"),
        _split("Van Minh, Van Hung, Duc Anh, Van Nam, Quang Huy, Minh Tuan, Van Long"),
    ),
    "cn": (
        _split("Wang, Li, Zhang, Liu, Chen, Yang, Huang, Zhao, Wu, Zhou, Xu, Sun"),
        _split("Xiu Ying, Mei, Li Na, Jing, Yan, Hui, Xiaoyan"),
        _split("Wei, Jun, Lei, Hao, Jian, Ming, Tao, Qiang"),
    ),
    "pt": (
        _split("Silva, Santos, Oliveira, Souza, Rodrigues, Ferreira, Alves, Pereira, Lima, Gomes, Costa, Gonçalves"),
        _split("Ana, Juliana, Camila, Fernanda, Larissa, Bruna, Beatriz, Gabriela"),
        _split("João, Pedro, Lucas, Gabriel, Rafael, Matheus, Felipe, Thiago"),
    ),
    "ph": (
        _split("Santos, Reyes, Cruz, Bautista, Garcia, Mendoza, Dela Cruz, Villanueva, Ramos, Aquino, Castillo"),
        _split("Maria Cristina, Jocelyn, Rowena, Marites, Analyn, Kristine"),
        _split("Jose, Mark Anthony, Ramon, Jericho, Rodel, Arnel"),
    ),
    "in": (
        _split("Singh, Kumar, Sharma, Patel, Gupta, Reddy, Nair, Das, Khan, Yadav"),
        _split("Priya, Anjali, Pooja, Sunita, Kavita, Deepa"),
        _split("Rahul, Amit, Suresh, Ravi, Vikram, Arjun"),
    ),
    "tr": (
        _split("Yilmaz, Kaya, Demir, Sahin, Çelik, Yildiz, Öztürk, Aydin, Arslan, Dogan"),
        _split("Elif, Zeynep, Merve, Esra, Aylin, Büsra"),
        _split("Mehmet, Mustafa, Ahmet, Emre, Burak, Murat"),
    ),
    "sr": (
        _split("Kartosen, Ramdin, Sewdien, Pinas, Kromodimedjo, Jagroep, Biharie, Macnack, Sitaldin, Lie, Held"),
        _split("Shanti, Priya, Sharon, Naomi, Esther, Rachel"),
        _split("Ravi, Glenn, Sergio, Romano, Dinesh, Marciano"),
    ),
    "th": (
        _split("Srisuk, Wongsa, Chaiyaporn, Boonmee, Saelim, Kaewkla"),
        _split("Siriporn, Malee, Kanya, Nok, Pim"),
        _split("Somchai, Anan, Niran, Chai"),
    ),
}
COUNTRY_POOL = {
    "NL": "nl", "PL": "pl", "RO": "ro", "BG": "bg", "HU": "hu", "LT": "ce", "SK": "ce", "CZ": "ce", "DE": "de",
    "PT": "pt", "NG": "ng", "UG": "ng", "UA": "ua", "MA": "ar", "SY": "ar", "DZ": "ar", "AF": "ar", "ER": "er",
    "VN": "vn", "CN": "cn", "BR": "pt", "PH": "ph", "IN": "in", "TR": "tr", "SR": "sr", "TH": "th",
}
# Country words organisations write instead of ISO codes (mapped in their mapping files).
COUNTRY_WORDS = {
    # code: (Dutch adjective, Dutch country name, English adjective)
    "NL": ("Nederlandse", "Nederland", "Dutch"),
    "PL": ("Poolse", "Polen", "Polish"), "RO": ("Roemeense", "Roemenië", "Romanian"),
    "BG": ("Bulgaarse", "Bulgarije", "Bulgarian"), "HU": ("Hongaarse", "Hongarije", "Hungarian"),
    "LT": ("Litouwse", "Litouwen", "Lithuanian"), "SK": ("Slowaakse", "Slowakije", "Slovak"),
    "CZ": ("Tsjechische", "Tsjechië", "Czech"), "DE": ("Duitse", "Duitsland", "German"),
    "PT": ("Portugese", "Portugal", "Portuguese"), "NG": ("Nigeriaanse", "Nigeria", "Nigerian"),
    "UG": ("Oegandese", "Oeganda", "Ugandan"), "UA": ("Oekraïense", "Oekraïne", "Ukrainian"),
    "MA": ("Marokkaanse", "Marokko", "Moroccan"), "SY": ("Syrische", "Syrië", "Syrian"),
    "DZ": ("Algerijnse", "Algerije", "Algerian"), "AF": ("Afghaanse", "Afghanistan", "Afghan"),
    "ER": ("Eritrese", "Eritrea", "Eritrean"), "VN": ("Vietnamese", "Vietnam", "Vietnamese"),
    "CN": ("Chinese", "China", "Chinese"), "BR": ("Braziliaanse", "Brazilië", "Brazilian"),
    "PH": ("Filipijnse", "Filipijnen", "Filipino"), "IN": ("Indiase", "India", "Indian"),
    "TR": ("Turkse", "Turkije", "Turkish"), "SR": ("Surinaamse", "Suriname", "Surinamese"),
    "TH": ("Thaise", "Thailand", "Thai"),
}


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
    """Who uses the anonymous chat: young, Dutch, female, sexual exploitation (figures.md), tuned to ~1 in 5 under 15."""
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
        chance *= 0.2  # minors (or their parents) consent less often: plausible (figures.md: 2-3% of Dutch minors visible)
    elif p.form == "sexual" and p.nationality == "NL":
        chance *= 0.5  # Dutch adults exploited sexually often stay tied to the exploiter: plausible
    if p.detected:
        chance *= 2.0  # victims in a criminal case see a reason to be registered: plausible
    return min(chance, 0.9)


def _build(year: int, seed: int, scale: float) -> tuple[list[Person], dict[str, float]]:
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
        table = NI_CONTACTS_CHATTER if p.chatter else NI_CONTACTS_DETECTED if p.detected else NI_CONTACTS_OTHERWISE
        k = int(_pick(rng, table))
        if k:
            weights = [_affinity(o, p) for o in ni_orgs]
            org_ids.extend(o.id for o in _weighted_sample(rng, ni_orgs, weights, k))
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
    return people, consent_rates


# ------------------------------------------------------------------------------------------------ export styles

@dataclass(frozen=True)
class Style:
    """How one organisation's system writes its export."""

    format: str  # csv | xlsx | parquet | json
    ext: str
    columns: dict[str, str]  # schema field -> the organisation's header
    date_format: str = "%Y-%m-%d"
    legacy_date_format: str | None = None  # a second format some older rows use
    delimiter: str = ","
    encoding: str = "utf-8"
    line_end: str = "\n"
    declare_file: bool = True  # write [file] in the mapping (else the reader detects it)
    form: dict[str, str] = field(default_factory=dict)  # code -> label written
    gender: dict[str, str] = field(default_factory=dict)
    nationality: str = "iso"  # iso | nl_adj | nl_country | en_adj
    province: str = "iso"  # iso | nl | en
    consent: tuple[str, str] = ("yes", "no")
    consent_bool: bool = False  # consent stored as a boolean (Parquet)
    unknown: str = ""  # what is written for an unknown gender / nationality / province
    family_upper: bool = False  # family names in capitals
    decomposed: bool = False  # names written in Unicode NFD (a Mac-based system)
    typed_dates: bool = False  # XLSX / Parquet store real dates
    sheet: str | None = None
    cover_sheet: bool = False  # an explanation sheet before the data sheet
    notes_lang: str = "nl"


NL_FORMS = {"sexual": "Seksuele uitbuiting", "labour": "Arbeidsuitbuiting", "criminal": "Criminele uitbuiting",
            "organ_removal": "Orgaanverwijdering", "other_unknown": "Overig/onbekend"}
EN_FORMS = {"sexual": "Sexual exploitation", "labour": "Labour exploitation", "criminal": "Criminal exploitation",
            "organ_removal": "Organ removal", "other_unknown": "Other"}
CODE_FORMS = {"sexual": "SU", "labour": "AU", "criminal": "CU", "organ_removal": "OV", "other_unknown": "OO"}
NL_GENDER = {"female": "vrouw", "male": "man", "other": "anders", "unknown": "onbekend"}
LETTER_GENDER = {"female": "V", "male": "M", "other": "X", "unknown": ""}
EN_GENDER = {"female": "F", "male": "M", "other": "X", "unknown": "U"}
YOUTH_GENDER = {"female": "meisje", "male": "jongen", "other": "anders", "unknown": "onbekend"}

STYLES: dict[str, Style] = {
    # The national police system: Windows code page, semicolons, Dutch labels, capitals for family names.
    "police": Style(
        "csv", "csv", {
            "record_id": "Registratienummer", "person_id": "Persoonsnummer", "family_name": "Achternaam",
            "given_names": "Voornamen", "date_of_birth": "Geboortedatum", "report_date": "Datum registratie",
            "form": "Uitbuitingsvorm", "gender": "Geslacht", "nationality": "Nationaliteit", "province": "Provincie",
            "notes": "Opmerkingen"},
        date_format="%d-%m-%Y", delimiter=";", encoding="cp1252", line_end="\r\n", form=NL_FORMS,
        gender=LETTER_GENDER, nationality="iso", province="nl", family_upper=True),
    "kmar": Style(
        "xlsx", "xlsx", {
            "record_id": "Zaaknummer", "person_id": "Persoon ID", "family_name": "Achternaam", "given_names": "Voornamen",
            "date_of_birth": "Geboortedatum", "report_date": "Datum constatering", "form": "Vorm",
            "gender": "Geslacht", "nationality": "Nationaliteit", "province": "Provincie", "notes": "Toelichting"},
        form=NL_FORMS, gender=LETTER_GENDER, nationality="nl_adj", province="nl", typed_dates=True,
        sheet="Registraties"),
    "inspectie": Style(
        "csv", "csv", {
            "record_id": "Inspectienummer", "person_id": "Betrokkene", "family_name": "Achternaam",
            "given_names": "Voornamen", "date_of_birth": "Geboortedatum", "report_date": "Datum inspectie",
            "form": "Soort", "gender": "Geslacht", "nationality": "Land", "province": "Provincie",
            "notes": "Bevindingen"},
        delimiter=";", encoding="utf-8-sig", form=CODE_FORMS, gender=LETTER_GENDER, nationality="nl_country",
        province="iso"),
    # A case system sold to care organisations in English, plain UTF-8 CSV (nothing declared: the reader detects it).
    "care_en": Style(
        "csv", "csv", {
            "record_id": "case_id", "person_id": "client_id", "family_name": "surname", "given_names": "first_names",
            "date_of_birth": "dob", "report_date": "intake_date", "form": "exploitation_type", "gender": "sex",
            "nationality": "nationality", "province": "province", "consent": "consent_to_share",
            "consent_date": "consent_date", "consent_withdrawn_date": "consent_withdrawn", "notes": "notes"},
        declare_file=False, form=EN_FORMS, gender=EN_GENDER, nationality="iso", province="iso", notes_lang="en"),
    "care_nl": Style(
        "csv", "csv", {
            "record_id": "Dossiernr", "person_id": "Cliëntnr", "family_name": "Achternaam", "given_names": "Voornaam",
            "date_of_birth": "Geb.datum", "report_date": "Aanmelddatum", "form": "Vorm uitbuiting",
            "gender": "Geslacht", "nationality": "Nationaliteit", "province": "Provincie", "consent": "Toestemming",
            "consent_date": "Datum toestemming", "consent_withdrawn_date": "Toestemming ingetrokken op",
            "notes": "Bijzonderheden"},
        date_format="%d-%m-%Y", delimiter=";", encoding="cp1252", line_end="\r\n", form=NL_FORMS, gender=NL_GENDER,
        nationality="nl_adj", province="nl", consent=("ja", "nee"), unknown="onbekend"),
    "shelter_en_tab": Style(
        "csv", "tsv", {
            "record_id": "Admission ID", "person_id": "Resident ID", "family_name": "Last name",
            "given_names": "First name(s)", "date_of_birth": "Date of birth", "report_date": "Admission date",
            "form": "Type of exploitation", "gender": "Gender", "nationality": "Nationality", "province": "Province",
            "consent": "Consent (registration)", "consent_date": "Consent date",
            "consent_withdrawn_date": "Consent withdrawn", "notes": "Remarks"},
        date_format="%d/%m/%Y", delimiter="\t", encoding="utf-8", form=EN_FORMS, gender=EN_GENDER,
        nationality="en_adj", province="en", consent=("Y", "N"), notes_lang="en", decomposed=True),
    "shelter_xlsx": Style(
        "xlsx", "xlsx", {
            "record_id": "Opnamenummer", "person_id": "Bewonersnummer", "family_name": "Achternaam",
            "given_names": "Voornamen", "date_of_birth": "Geboortedatum", "report_date": "Datum opname",
            "form": "Uitbuiting", "gender": "Geslacht", "nationality": "Nationaliteit", "province": "Provincie",
            "consent": "Toestemming CoMensha", "consent_date": "Toestemming per",
            "consent_withdrawn_date": "Ingetrokken per", "notes": "Notities"},
        date_format="%d-%m-%Y", form=NL_FORMS, gender=NL_GENDER, nationality="iso", province="nl",
        consent=("ja", "nee"), sheet="Cliënten", cover_sheet=True),
    "youth_nl": Style(
        "csv", "csv", {
            "record_id": "Intakenummer", "person_id": "Jeugdige", "family_name": "Achternaam",
            "given_names": "Voornamen", "date_of_birth": "Geboortedatum", "age": "Leeftijd",
            "report_date": "Datum intake", "form": "Problematiek", "gender": "Geslacht", "nationality": "Nationaliteit",
            "province": "Provincie", "consent": "Toestemming (ouder/jeugdige)", "consent_date": "Datum toestemming",
            "consent_withdrawn_date": "Datum intrekking", "notes": "Verslag"},
        date_format="%d-%m-%Y", delimiter=";", encoding="utf-8-sig",
        form={**NL_FORMS, "sexual": "Loverboyproblematiek"}, gender=YOUTH_GENDER, nationality="nl_adj",
        province="nl", consent=("ja", "nee"), unknown="onbekend"),
    "muni_nl": Style(
        "csv", "csv", {
            "record_id": "Zaaknummer", "person_id": "Cliëntnummer", "family_name": "Naam", "given_names": "Voornaam",
            "date_of_birth": "Geboortedatum", "age": "Leeftijd", "report_date": "Datum melding",
            "form": "Soort uitbuiting", "gender": "Geslacht", "nationality": "Land van herkomst",
            "province": "Provincie", "consent": "Toestemming registratie", "consent_date": "Toestemming datum",
            "consent_withdrawn_date": "Intrekking datum", "notes": "Toelichting"},
        date_format="%d-%m-%Y", delimiter=";", encoding="cp1252", line_end="\r\n", form=CODE_FORMS,
        gender=LETTER_GENDER, nationality="nl_country", province="nl", consent=("J", "N")),
    "muni_tab": Style(
        "csv", "tsv", {
            "record_id": "Dossiernummer", "person_id": "Cliëntnummer", "family_name": "Achternaam",
            "given_names": "Voornamen", "date_of_birth": "Geboortedatum", "report_date": "Datum aanmelding",
            "form": "Vorm", "gender": "Geslacht", "nationality": "Nationaliteit", "province": "Provincie",
            "consent": "Toestemming delen", "consent_date": "Datum toestemming",
            "consent_withdrawn_date": "Toestemming ingetrokken", "notes": "Toelichting"},
        date_format="%d/%m/%Y", delimiter="\t", encoding="utf-8-sig", form=NL_FORMS, gender=NL_GENDER,
        nationality="nl_adj", province="nl", consent=("ja", "nee")),
    "muni_mixed_dates": Style(
        "csv", "csv", {
            "record_id": "Zaaknummer", "person_id": "Cliëntnummer", "family_name": "Achternaam",
            "given_names": "Voornamen", "date_of_birth": "Geboortedatum", "report_date": "Datum melding",
            "form": "Soort uitbuiting", "gender": "Geslacht", "nationality": "Nationaliteit",
            "province": "Provincie", "consent": "Toestemming", "consent_date": "Datum toestemming",
            "consent_withdrawn_date": "Datum intrekking", "notes": "Toelichting"},
        date_format="%d-%m-%Y", legacy_date_format="%Y-%m-%d", delimiter=";", encoding="cp1252", line_end="\r\n",
        form=NL_FORMS, gender=LETTER_GENDER, nationality="iso", province="nl", consent=("ja", "nee")),
    # A municipal data platform: Parquet with real types, codes already in the national codelists.
    "muni_parquet": Style(
        "parquet", "parquet", {
            "record_id": "zaak_id", "person_id": "client_id", "family_name": "achternaam", "given_names": "voornamen",
            "date_of_birth": "geboortedatum", "age": "leeftijd", "report_date": "meldingsdatum",
            "form": "uitbuitingsvorm", "gender": "geslacht", "nationality": "nationaliteit", "province": "provincie",
            "consent": "toestemming", "consent_date": "toestemming_datum",
            "consent_withdrawn_date": "ingetrokken_datum", "notes": "toelichting"},
        typed_dates=True, consent_bool=True, declare_file=False),
    "chat_json": Style(
        "json", "jsonl", {
            "record_id": "chat_id", "person_id": "session", "age": "age", "report_date": "chat_date",
            "form": "topic", "gender": "gender", "nationality": "country", "province": "province"},
        form={"sexual": "loverboy / seksueel", "labour": "werk", "criminal": "criminele uitbuiting",
              "organ_removal": "organen", "other_unknown": "anders"},
        gender=YOUTH_GENDER, nationality="iso", province="nl"),
    "ngo_en": Style(
        "csv", "csv", {
            "record_id": "Ref", "person_id": "Worker ID", "family_name": "Family name", "given_names": "Given names",
            "date_of_birth": "Date of birth", "report_date": "First contact", "form": "Situation",
            "gender": "Gender", "nationality": "Nationality", "province": "Work region", "consent": "Consent",
            "consent_date": "Consent date", "consent_withdrawn_date": "Withdrawn", "notes": "Case notes"},
        date_format="%d/%m/%Y", encoding="utf-8", form=EN_FORMS, gender=EN_GENDER, nationality="en_adj",
        province="en", consent=("yes", "no"), notes_lang="en"),
    "youth_xlsx": Style(
        "xlsx", "xlsx", {
            "record_id": "Dossier", "person_id": "Jeugdige ID", "family_name": "Achternaam", "given_names": "Voornamen",
            "date_of_birth": "Geboortedatum", "age": "Leeftijd", "report_date": "Aanmelding", "form": "Uitbuiting",
            "gender": "Geslacht", "nationality": "Nationaliteit", "province": "Provincie",
            "consent": "Toestemming", "consent_date": "Toestemming datum",
            "consent_withdrawn_date": "Ingetrokken", "notes": "Opmerkingen"},
        typed_dates=True, form=NL_FORMS, gender=YOUTH_GENDER, nationality="nl_adj", province="nl",
        consent=("ja", "nee"), unknown="onbekend"),
}

NOTES = {
    "nl": ["Verwezen door wijkteam", "Intake telefonisch; vervolgafspraak gepland", "Tolk nodig",
           'Cliënt zegt: "ik moest elke dag werken"', "Doorverwezen naar opvang, zie dossier",
           "Contact via school", "Eerder bekend bij jeugdzorg", "Meerdere gesprekken, situatie onduidelijk",
           "Aangifte overwogen,\nnog geen besluit", "Woont bij werkgever; paspoort ingenomen"],
    "en": ["Referred by outreach team", "Interpreter needed", "Came forward after losing job, housing and permit",
           'Says: "they kept my passport"', "Follow-up booked; see file", "Known to another service, details unclear",
           "Reported via hotline,\nsecond meeting planned", "Debt to recruiter mentioned"],
}
PROVINCE_EN = {"NL-NH": "North Holland", "NL-ZH": "South Holland", "NL-NB": "North Brabant"}


def _province_label(style: Style, code: str) -> str:
    if code == "unknown":
        return style.unknown
    if style.province == "iso":
        return code
    english, dutch = LABELS["province"][code]
    if style.province == "nl":
        return dutch
    return PROVINCE_EN.get(code, english)


def _nationality_label(style: Style, code: str | None) -> str:
    if code is None:
        return style.unknown
    if style.nationality == "iso":
        return code
    adj, country, english = COUNTRY_WORDS[code]
    return {"nl_adj": adj, "nl_country": country, "en_adj": english}[style.nationality]


def _value_mapping(style: Style) -> dict[str, dict[str, str]]:
    """[values.*] entries an organisation needs: its own labels that are neither codes nor default aliases."""
    wanted: dict[str, dict[str, str]] = {
        "form": {label: code for code, label in style.form.items()},
        "gender": {label: code for code, label in style.gender.items() if label},
        "consent": {style.consent[0]: "true", style.consent[1]: "false"},
    }
    if style.nationality != "iso":
        wanted["nationality"] = {_nationality_label(style, c): c for c in COUNTRY_WORDS}
    if style.province != "iso":
        wanted["province"] = {_province_label(style, c): c for c in codes("province") if c != "unknown"}
    if style.unknown:
        for name in ("gender", "province"):
            wanted.setdefault(name, {})[style.unknown] = "unknown"
        wanted.setdefault("nationality", {})[style.unknown] = ""
    values: dict[str, dict[str, str]] = {}
    for name, pairs in wanted.items():
        if name not in style.columns:
            continue
        defaults = DEFAULT_VALUE_ALIASES.get(name, {})
        own = {
            label: code for label, code in pairs.items()
            if defaults.get(label.strip().casefold()) != code and label != code
        }
        if own:
            values[name] = dict(sorted(own.items()))
    return values


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_str(key)


def mapping_toml(org: OrgSpec, style: Style) -> str:
    """The organisation's mapping file (schema.Mapping as TOML)."""
    formats = [style.date_format] + ([style.legacy_date_format] if style.legacy_date_format else [])
    lines = [f"# Mapping for {org.name} (synthetic organisation, generated by aggregator synth)", "mapping_version = 1",
             "date_formats = [" + ", ".join(_toml_str(f) for f in formats) + "]", ""]
    if style.declare_file:
        lines.append("[file]")
        lines.append(f"format = {_toml_str(style.format)}")
        if style.format == "csv":
            lines.append(f"delimiter = {_toml_str(style.delimiter)}")
            lines.append(f"encoding = {_toml_str(style.encoding)}")
        if style.sheet:
            lines.append(f"sheet = {_toml_str(style.sheet)}")
        lines.append("")
    lines.append("[columns]")
    lines.extend(f"{name} = {_toml_str(header)}" for name, header in style.columns.items())
    for name, pairs in _value_mapping(style).items():
        lines.append("")
        lines.append(f"[values.{name}]")
        lines.extend(f"{_toml_key(label)} = {_toml_str(code)}" for label, code in pairs.items())
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ writing exports

def _local_id(org: OrgSpec, year: int, index: int) -> str:
    """A person's id in the organisation's own style."""
    prefix = org.id.split("-")[0][:3].upper()
    return f"{prefix}-{year % 100:02d}-{index:05d}"


def _org_rows(org: OrgSpec, style: Style, people: list[Person], year: int, rng: random.Random) -> list[dict]:
    """Canonical rows (schema field -> Python value) for one organisation, in intake order."""
    rows = []
    mine = [(p, c) for p in people for c in p.contacts if c.org == org.id]
    mine.sort(key=lambda pc: (pc[1].dates[0], pc[0].key))
    for index, (p, c) in enumerate(mine, start=1):
        person_id = _local_id(org, year, index)
        if org.profile == "help_line":
            person_id = f"s{rng.getrandbits(48):012x}"
        for d in c.dates:
            rows.append({
                "record_id": "",
                "person_id": person_id,
                "family_name": None if org.profile == "help_line" else p.family_name,
                "given_names": None if org.profile == "help_line" else p.given_names,
                "date_of_birth": None if org.profile == "help_line" else p.date_of_birth,
                "age": p.age,
                "report_date": d,
                "form": p.form,
                "gender": p.gender,
                "nationality": p.nationality,
                "province": p.province,
                "consent": c.consent,
                "consent_date": c.consent_date,
                "consent_withdrawn_date": c.withdrawn_date,
                "notes": rng.choice(NOTES[style.notes_lang]) if rng.random() < 0.6 else None,
            })
    rows.sort(key=lambda r: (r["report_date"], r["person_id"]))
    prefix = org.id.split("-")[0][:3].upper()
    for n, row in enumerate(rows, start=1):
        row["record_id"] = f"{prefix}{year}{n:05d}"
    return rows


def _render(style: Style, row: dict, rng: random.Random, mode: str) -> dict[str, object]:
    """One canonical row in the organisation's own values.

    mode "text": every value a string ("" when empty) - CSV and text-only spreadsheets;
    mode "json": dates as text, age as a number, null when empty;
    mode "typed": dates, numbers and booleans as such, None when empty - Parquet and typed spreadsheets.
    """
    out: dict[str, object] = {}
    for name, header in style.columns.items():
        value = row[name]
        if name in ("date_of_birth", "report_date", "consent_date", "consent_withdrawn_date"):
            if value is None or mode == "typed":
                rendered: object = value
            else:
                fmt = style.date_format
                if style.legacy_date_format and rng.random() < 0.2:
                    fmt = style.legacy_date_format
                rendered = value.strftime(fmt)
        elif name == "form":
            rendered = style.form.get(value, value)
        elif name == "gender":
            rendered = style.gender.get(value, value) if style.gender else (None if value == "unknown" else value)
        elif name == "nationality":
            rendered = _nationality_label(style, value)
        elif name == "province":
            rendered = _province_label(style, value)
        elif name == "consent":
            if style.consent_bool:
                rendered = value
            else:
                rendered = None if value is None else style.consent[0] if value else style.consent[1]
        elif name in ("family_name", "given_names"):
            rendered = value
            if value is not None:
                if name == "family_name" and style.family_upper:
                    rendered = value.upper()
                if style.decomposed:
                    rendered = unicodedata.normalize("NFD", rendered)
        elif name == "age":
            rendered = str(value) if (mode == "text" and value is not None) else value
        else:
            rendered = value
        if mode == "text" and rendered is None:
            rendered = ""
        elif mode != "text" and rendered == "":
            rendered = None
        out[header] = rendered
    return out


def _write_csv(path: Path, style: Style, rendered: list[dict]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=style.delimiter, lineterminator=style.line_end, quoting=csv.QUOTE_MINIMAL)
    headers = list(style.columns.values())
    writer.writerow(headers)
    for row in rendered:
        writer.writerow([row[h] for h in headers])
    path.write_bytes(buffer.getvalue().encode(style.encoding))


def _write_jsonl(path: Path, style: Style, rendered: list[dict]) -> None:
    lines = []
    for row in rendered:
        lines.append(json.dumps(row, ensure_ascii=False))
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def _write_xlsx(path: Path, style: Style, org: OrgSpec, rendered: list[dict], year: int) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    stamp = dt.datetime(year, 12, 31, 17, 0, 0)
    workbook.properties.creator = org.name
    workbook.properties.created = stamp
    workbook.properties.modified = stamp
    sheet = workbook.active
    if style.cover_sheet:
        sheet.title = "Uitleg"
        sheet.append([f"Export {org.name} {year}"])
        sheet.append(["Gegevens staan op het tabblad " + (style.sheet or "")])
        sheet = workbook.create_sheet(style.sheet or "Sheet2")
    else:
        sheet.title = style.sheet or "Sheet1"
    headers = list(style.columns.values())
    sheet.append(headers)
    for row in rendered:
        sheet.append([row[h] for h in headers])
    if style.typed_dates:
        for column in sheet.iter_cols(min_row=2):
            for cell in column:
                if isinstance(cell.value, dt.date):
                    cell.number_format = "DD-MM-YYYY"
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(_fixed_zip_times(buffer.getvalue(), stamp))


def _fixed_zip_times(data: bytes, stamp: dt.datetime) -> bytes:
    """Rewrite a zip (XLSX) with fixed entry times, and openpyxl's save time replaced, so a seed gives the same bytes."""
    source = zipfile.ZipFile(io.BytesIO(data))
    target_buffer = io.BytesIO()
    with zipfile.ZipFile(target_buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>" + stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode() + rb"\g<2>",
                    content,
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            target.writestr(fixed, content)
    return target_buffer.getvalue()


PARQUET_TYPES = {
    "date_of_birth": "DATE", "report_date": "DATE", "consent_date": "DATE", "consent_withdrawn_date": "DATE",
    "age": "INTEGER", "consent": "BOOLEAN",
}


def _write_parquet(con, path: Path, style: Style, rendered: list[dict]) -> None:
    from .engine import quote_ident

    headers = list(style.columns.items())
    selects = []
    params = {}
    for i, (name, header) in enumerate(headers):
        params[f"c{i}"] = [row[header] for row in rendered]
        sql_type = PARQUET_TYPES.get(name, "VARCHAR")
        selects.append(f"unnest($c{i}::{sql_type}[]) AS {quote_ident(header)}")
    con.execute("CREATE OR REPLACE TEMP TABLE synth_export AS SELECT " + ", ".join(selects), params)
    con.execute(f"COPY synth_export TO '{_sql_path(path)}' (FORMAT parquet)")
    con.execute("DROP TABLE synth_export")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


# ------------------------------------------------------------------------------------------------ the nation

@dataclass(frozen=True)
class OrgFile:
    id: str
    name: str
    kind: str
    reporter_type: str
    export: str  # path relative to the nation folder
    mapping: str
    format: str
    rows: int
    people: int
    consent_rate: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Nation:
    """What make_nation wrote; totals come from truth.parquet."""

    out: str
    year: int
    seed: int
    scale: float
    export_date: str
    orgs: list[OrgFile]
    truth_total: int
    consent_only_total: int
    rows_total: int
    by_form: dict[str, dict[str, int]]  # form -> {"truth": n, "consent_only": n}

    def as_dict(self) -> dict:
        data = asdict(self)
        data["orgs"] = [o.as_dict() for o in self.orgs]
        return data


def _check_args(year: int, seed: int, scale: float) -> None:
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
        raise UsageError("year must be a whole number from 2000 to 2100")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError("seed must be a whole number of 0 or more")
    if not isinstance(scale, (int, float)) or not 0.01 <= float(scale) <= 50:
        raise UsageError("scale must be a number from 0.01 to 50")


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise UsageError(f"{out} is not empty and holds no synthetic nation; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / "orgs", out / TRUTH_FILE, out / MANIFEST_FILE):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


def make_nation(year: int, seed: int, out: Path, *, scale: float = 1.0) -> Nation:
    """Write a synthetic nation (exports, mappings, truth, manifest) into `out` and return its summary.

    The same (year, seed, scale) always writes the same bytes. `scale` multiplies the population and the help line's
    chatters (1.0 = about 7,000 people known to at least one organisation); the organisations stay the same.
    """
    import duckdb

    _check_args(year, seed, scale)
    out = Path(out)
    _prepare_out(out)
    people, consent_rates = _build(year, seed, float(scale))
    export_date = dt.date(year, 12, 31)

    con = duckdb.connect(":memory:")
    con.execute("SET threads = 1")  # byte-identical Parquet files
    org_files = []
    for org in ORGANISATIONS:
        style = STYLES[org.style]
        rng = random.Random(f"synth:{SYNTH_VERSION}:{year}:{seed}:export:{org.id}")
        rows = _org_rows(org, style, people, year, rng)
        mode = "json" if style.format == "json" else "typed" if style.typed_dates else "text"
        rendered = [_render(style, row, rng, mode) for row in rows]
        folder = out / "orgs" / org.id
        folder.mkdir(parents=True, exist_ok=True)
        export = folder / f"export-{year}.{style.ext}"
        if style.format == "csv":
            _write_csv(export, style, rendered)
        elif style.format == "json":
            _write_jsonl(export, style, rendered)
        elif style.format == "xlsx":
            _write_xlsx(export, style, org, rendered, year)
        else:
            _write_parquet(con, export, style, rendered)
        (folder / "mapping.toml").write_text(mapping_toml(org, style), encoding="utf-8")
        org_files.append(OrgFile(
            org.id, org.name, org.kind, org.reporter_type, export.relative_to(out).as_posix(),
            (folder / "mapping.toml").relative_to(out).as_posix(), style.format, len(rows),
            len({r["person_id"] for r in rows}), consent_rates[org.id]))

    _write_truth(con, out / TRUTH_FILE, people)
    truth_total, consent_total = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE len(lawful_orgs) > 0) FROM read_parquet($p)",
        {"p": str(out / TRUTH_FILE)},
    ).fetchone()
    by_form = {
        form: {"truth": int(t), "consent_only": int(c)}
        for form, t, c in con.execute(
            """
            SELECT form, count(*), count(*) FILTER (WHERE len(lawful_orgs) > 0)
            FROM read_parquet($p) GROUP BY form
            """,
            {"p": str(out / TRUTH_FILE)},
        ).fetchall()
    }
    by_form = {form: by_form.get(form, {"truth": 0, "consent_only": 0}) for form in codes("form")}
    con.close()

    nation = Nation(
        out=str(out), year=year, seed=seed, scale=float(scale), export_date=export_date.isoformat(),
        orgs=org_files, truth_total=int(truth_total), consent_only_total=int(consent_total),
        rows_total=sum(o.rows for o in org_files), by_form=by_form,
    )
    manifest = {
        "synth_version": SYNTH_VERSION,
        "year": year,
        "seed": seed,
        "scale": float(scale),
        "export_date": export_date.isoformat(),
        "truth": TRUTH_FILE,
        "totals": {"truth": nation.truth_total, "consent_only": nation.consent_only_total, "rows": nation.rows_total,
                   "by_form": by_form},
        "orgs": [o.as_dict() for o in org_files],
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return nation


def _write_truth(con, path: Path, people: list[Person]) -> None:
    columns = {
        "person_key": ("VARCHAR", [p.key for p in people]),
        "form": ("VARCHAR", [p.form for p in people]),
        "age_band": ("VARCHAR", [p.age_band for p in people]),
        "gender": ("VARCHAR", [p.gender for p in people]),
        "nationality_group": ("VARCHAR", [p.nationality_group for p in people]),
        "province": ("VARCHAR", [p.province for p in people]),
        "nationality": ("VARCHAR", [p.nationality for p in people]),
        "age": ("INTEGER", [p.age for p in people]),
        "help_line": ("BOOLEAN", [p.chatter for p in people]),
        "orgs": ("VARCHAR[]", [[c.org for c in p.contacts] for p in people]),
        "lawful_orgs": ("VARCHAR[]", [[c.org for c in p.contacts if c.lawful] for p in people]),
        "statutory_orgs": ("VARCHAR[]", [[c.org for c in p.contacts if c.lawful and c.consent is None]
                                         for p in people]),
    }
    selects = [f"unnest(${name}::{sql_type}[]) AS {name}" for name, (sql_type, _) in columns.items()]
    con.execute("CREATE OR REPLACE TEMP TABLE synth_truth AS SELECT " + ", ".join(selects),
                {name: values for name, (_, values) in columns.items()})
    con.execute(f"COPY (SELECT * FROM synth_truth ORDER BY person_key) TO '{_sql_path(path)}' (FORMAT parquet)")
    con.execute("DROP TABLE synth_truth")


# ------------------------------------------------------------------------------------------------ truth helpers

def _checked_dims(by: list[str]) -> list[str]:
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise UsageError(f"unknown dimension(s) {', '.join(map(repr, unknown))}; known: {', '.join(DIMENSIONS)}")
    if len(set(by)) != len(by):
        raise UsageError("a dimension is named twice")
    return list(by)


def _counts(out: Path, by: list[str], lawful_only: bool) -> dict[tuple, int]:
    import itertools

    import duckdb

    from .engine import quote_ident

    dims = _checked_dims(by)
    path = Path(out) / TRUTH_FILE
    if not path.is_file():
        raise UsageError(f"{path} not found; run `aggregator synth` first")
    select = ", ".join(quote_ident(d) for d in dims)
    where = "WHERE len(lawful_orgs) > 0" if lawful_only else ""
    sql = f"SELECT {select + ', ' if dims else ''}count(*) FROM read_parquet($p) {where}"
    if dims:
        sql += f" GROUP BY {select}"
    with duckdb.connect(":memory:") as con:
        found = {tuple(row[:-1]): int(row[-1]) for row in con.execute(sql, {"p": str(path)}).fetchall()}
    cells = itertools.product(*(codes(d) for d in dims))
    return {cell: found.get(cell, 0) for cell in cells}


def truth_counts(out: Path, by: list[str]) -> dict[tuple, int]:
    """True number of distinct people known to any organisation, per cell of `by` (every codelist cell, zeros too)."""
    return _counts(out, by, lawful_only=False)


def consent_only_counts(out: Path, by: list[str]) -> dict[tuple, int]:
    """Distinct people with a lawful basis (statutory, or consent valid at the export date) at >= 1 organisation."""
    return _counts(out, by, lawful_only=True)
