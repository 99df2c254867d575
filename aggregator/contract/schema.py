"""The contracts: one export row (Registration), the mapping file, and the bundle that leaves an organisation.

JSON Schemas in schemas/ are generated from these models (`python -m aggregator.contract.schema`); a test fails when they drift.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .. import SCHEMA_VERSION
from .codelists import AgeBand, CODELIST_VERSION, Form, Gender, ISO_3166_ALPHA2, NationalityGroup, OrgKind, Province, ReporterType

ShortId = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
OrgId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
# Exact rational number as text: "1", "3/10", "0.25". Never a float.
ExactNumber = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(/[0-9]+)?$", max_length=80)]

# Bounds on every number a bundle carries, so a signed bundle cannot break the coordinator's arithmetic or its
# DuckDB columns (INTEGER sequence and period, BIGINT counts, DOUBLE scale): it is refused with the bound it breaks.
MAX_SEQUENCE = 2**31 - 1
MAX_ABS_COUNT = 10**12  # a noisy count; far beyond any real number of people
MIN_BUNDLE_EPSILON = Fraction(1, 10**9)  # a marginal's share of a release may be below the CLI's MIN_EPSILON
MAX_SCALE = 1e9  # noise scale of epsilon MIN_BUNDLE_EPSILON
MAX_VARIANCE = 1e19  # the discrete Laplace variance at MAX_SCALE is about 2 * MAX_SCALE**2
MAX_EXPECTED_ERROR = 1e12


def _bundle_epsilon(text: str) -> str:
    """Epsilon text of a bundle, through the one parser: exact, positive, between MIN_BUNDLE_EPSILON and MAX_EPSILON."""
    from ..privacy.epsilon import parse_epsilon

    parse_epsilon(text, error=ValueError, minimum=MIN_BUNDLE_EPSILON)
    return text


BundleEpsilon = Annotated[ExactNumber, AfterValidator(_bundle_epsilon)]

EARLIEST_DATE = dt.date(1900, 1, 1)
# strptime directives that DuckDB and Python both understand for dates.
DATE_DIRECTIVES = frozenset("dmYyBbje")


class Registration(BaseModel):
    """One row of an organisation's export after its mapping has been applied.

    Fields marked `identifying` never leave the organisation and never appear in a message.
    `export_date` comes from the validation context (the day the export was made).
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    record_id: ShortId = Field(json_schema_extra={"identifying": True})
    person_id: ShortId = Field(json_schema_extra={"identifying": True})
    family_name: Name | None = Field(default=None, json_schema_extra={"identifying": True})
    given_names: Name | None = Field(default=None, json_schema_extra={"identifying": True})
    date_of_birth: dt.date | None = Field(default=None, json_schema_extra={"identifying": True})
    age: Annotated[int, Field(ge=0, le=120)] | None = None
    report_date: dt.date
    form: Form
    gender: Gender | None = None
    nationality: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    province: Province | None = None
    consent: bool | None = None
    consent_date: dt.date | None = None
    consent_withdrawn_date: dt.date | None = None
    notes: Annotated[str, Field(max_length=4000)] | None = Field(default=None, json_schema_extra={"identifying": True})

    @field_validator("nationality")
    @classmethod
    def _iso_country(cls, value: str | None) -> str | None:
        if value is not None and value not in ISO_3166_ALPHA2:
            raise ValueError("not an ISO 3166-1 alpha-2 country code")
        return value

    @field_validator("date_of_birth", "report_date", "consent_date", "consent_withdrawn_date")
    @classmethod
    def _plausible_date(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        export_date = (info.context or {}).get("export_date")
        if value is not None and value < EARLIEST_DATE:
            raise ValueError("date before 1900-01-01")
        if value is not None and export_date is not None and value > export_date:
            raise ValueError("date after the export date")
        return value

    @model_validator(mode="after")
    def _date_order(self) -> Registration:
        if self.date_of_birth is not None and self.date_of_birth > self.report_date:
            raise ValueError("date of birth after the report date")
        if (
            self.consent_withdrawn_date is not None
            and self.consent_date is not None
            and self.consent_withdrawn_date < self.consent_date
        ):
            raise ValueError("consent withdrawn before it was given")
        return self


IDENTIFYING_FIELDS = tuple(
    name for name, f in Registration.model_fields.items() if (f.json_schema_extra or {}).get("identifying")
)
# Fields whose normalised values feed the pseudonym, in this order.
PSEUDONYM_FIELDS = ("family_name", "given_names", "date_of_birth")


class FileOptions(BaseModel):
    """How to read the export; anything left out is detected."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "xlsx", "parquet", "json"] | None = None
    delimiter: Literal[",", ";", "\t", "|"] | None = None
    encoding: Literal["utf-8", "utf-8-sig", "cp1252", "latin-1"] | None = None
    sheet: str | None = None


# Required fields a mapping may leave out: many exports have no record id, and then the row number stands in for it
# locally (it is identifying like a record id, and never leaves).
ROW_NUMBER_STANDS_IN = ("record_id",)


class Mapping(BaseModel):
    """An organisation's own column names and values mapped onto the Registration schema (a TOML file)."""

    model_config = ConfigDict(extra="forbid")

    mapping_version: Literal[1] = 1
    file: FileOptions = FileOptions()
    date_formats: list[Annotated[str, Field(min_length=2, max_length=40)]] = Field(
        default_factory=lambda: ["%Y-%m-%d"], min_length=1, max_length=10
    )
    columns: dict[str, Annotated[str, Field(min_length=1, max_length=200)]]
    values: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(Registration.model_fields))
        if unknown:
            raise ValueError(f"unknown schema field(s) in [columns]: {', '.join(unknown)}")
        missing = sorted(
            n for n, f in Registration.model_fields.items()
            if f.is_required() and n not in columns and n not in ROW_NUMBER_STANDS_IN
        )
        if missing:
            raise ValueError(f"[columns] has no entry for required field(s): {', '.join(missing)}")
        return columns

    @field_validator("date_formats")
    @classmethod
    def _known_directives(cls, formats: list[str]) -> list[str]:
        for fmt in formats:
            directives = re.findall(r"%(.)", fmt.replace("%%", ""))
            unknown = [d for d in directives if d not in DATE_DIRECTIVES]
            if unknown or not directives:
                raise ValueError(
                    f"date format {fmt!r} is not understood; use strptime directives such as %d-%m-%Y or %Y-%m-%d"
                )
        return formats

    @field_validator("values")
    @classmethod
    def _known_value_fields(cls, values: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(values) - set(Registration.model_fields))
        if unknown:
            raise ValueError(f"unknown schema field(s) in [values]: {', '.join(unknown)}")
        return values


# ---------------------------------------------------------------- the bundle



class OrgRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: OrgId
    kind: OrgKind
    reporter_type: ReporterType


class Record(BaseModel):
    """One person with a lawful basis: minimised to the release dimensions, pseudonymised."""

    model_config = ConfigDict(extra="forbid")

    pseudonym: Hex64
    basis: Literal["statutory", "consent"]
    form: Form
    age_band: AgeBand
    gender: Gender
    nationality_group: NationalityGroup
    province: Province


class Withdrawal(BaseModel):
    """Consent withdrawn for a record sent earlier: the coordinator removes it from the national table.

    `sequence` is the organisation's latest bundle of `period` that sent the record: the coordinator removes it from
    that bundle and the earlier ones of the period, whatever the bundles' clocks (None: bundles made before)."""

    model_config = ConfigDict(extra="forbid")

    pseudonym: Hex64
    period: Annotated[int, Field(ge=2000, le=2100)]
    sequence: Annotated[int, Field(ge=1, le=MAX_SEQUENCE)] | None = None


class Cell(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: list[str] = Field(min_length=1, max_length=5)
    count: Annotated[int, Field(ge=-MAX_ABS_COUNT, le=MAX_ABS_COUNT)]


class Marginal(BaseModel):
    """One noisy table over a fixed cell set; `cells` lists every cell of the codelists' product, in order."""

    model_config = ConfigDict(extra="forbid")

    dimensions: list[str] = Field(min_length=1, max_length=5)
    epsilon: BundleEpsilon
    sensitivity: Literal[1] = 1
    scale: float = Field(gt=0, le=MAX_SCALE)
    variance: float = Field(gt=0, le=MAX_VARIANCE)
    expected_error_95: float = Field(ge=0, le=MAX_EXPECTED_ERROR)
    cells: list[Cell]


class Release(BaseModel):
    """The differentially private part: counts of people without a lawful basis."""

    model_config = ConfigDict(extra="forbid")

    privacy_unit: str
    mechanism: Literal["discrete_laplace"] = "discrete_laplace"
    library: str
    epsilon: BundleEpsilon
    marginals: list[Marginal]


class JointContribution(BaseModel):
    """This organisation's part of a joint release: its bucket vectors, Shamir-shared and each share encrypted to
    one computing party of the plan (so no single party, nor the coordinator, can read them)."""

    model_config = ConfigDict(extra="forbid")

    plan: Hex64  # digest of the signed computation plan the organisation pinned
    epsilon: ExactNumber  # the plan's joint epsilon, spent from this organisation's cap
    shares: list[Annotated[str, Field(max_length=48 * 1024 * 1024)]] = Field(min_length=3, max_length=3)  # base64


class Payload(BaseModel):
    """What leaves the organisation, signed inside an Envelope."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    codelist_version: Literal[1] = CODELIST_VERSION
    organisation: OrgRef
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    period: Annotated[int, Field(ge=2000, le=2100)]
    sequence: Annotated[int, Field(ge=1, le=MAX_SEQUENCE)]
    created_at: dt.datetime
    expires_at: dt.datetime
    records: list[Record]
    withdrawals: list[Withdrawal] = Field(default_factory=list)
    release: Release | None
    joint: JointContribution | None = None


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keyid: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    sig: str


class Envelope(BaseModel):
    """DSSE-style envelope: the signature covers the payload type and the exact payload bytes."""

    model_config = ConfigDict(extra="forbid")

    payloadType: Literal["application/vnd.registration-aggregator.bundle+json"]
    payload: str
    signatures: list[Signature] = Field(min_length=1, max_length=4)


SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "registration": Registration,
    "mapping": Mapping,
    "bundle-envelope": Envelope,
    "bundle-payload": Payload,
}

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text for every published model."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in SCHEMA_MODELS.items()
    }


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in json_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - developer tool
    for path in write_json_schemas():
        print(path)
