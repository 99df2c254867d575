"""Export styles: the columns, labels, date formats, encodings and file formats organisations write, and the
mapping file (schema.Mapping as TOML) that turns each style back into the Registration schema."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..contract.codelists import codes, DEFAULT_VALUE_ALIASES, LABELS
from .names import COUNTRY_WORDS
from .organisations import OrgSpec


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
