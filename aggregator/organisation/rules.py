"""The Registration contract as the validator checks it: each field's constraints read off the pydantic model,
the model's own validators written once more as SQL (`MODEL_RULES`), and every rule compiled to a SQL condition
over the typed rows, with its message for people. validate.py runs them; a property test keeps their verdicts
equal to pydantic's.
"""

from __future__ import annotations

import datetime as dt
import typing
from dataclasses import dataclass
from enum import Enum

from ..contract.codelists import ISO_3166_ALPHA2
from ..util.engine import quote_literal


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # "text" | "date" | "int" | "bool" | "code"
    required: bool
    identifying: bool
    max_length: int | None = None
    ge: int | None = None
    le: int | None = None
    codes: tuple[str, ...] = ()
    pattern_iso: bool = False


def field_specs() -> list[FieldSpec]:
    """One FieldSpec per Registration field, read from the pydantic model so the two cannot drift."""
    from annotated_types import Ge, Le, MaxLen

    from ..contract.schema import Registration

    specs = []
    for name, info in Registration.model_fields.items():
        annotation = info.annotation
        args = typing.get_args(annotation)
        base = next((a for a in args if a is not type(None)), annotation) if args else annotation
        metadata = list(info.metadata)
        if typing.get_origin(base) is typing.Annotated:
            inner, *extra = typing.get_args(base)
            base = inner
            for item in extra:
                metadata.extend(getattr(item, "metadata", [item]))
        max_length = next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)
        ge = next((m.ge for m in metadata if isinstance(m, Ge)), None)
        le = next((m.le for m in metadata if isinstance(m, Le)), None)
        codes: tuple[str, ...] = ()
        if isinstance(base, type) and issubclass(base, Enum):
            kind, codes = "code", tuple(m.value for m in base)
        elif base is dt.date:
            kind = "date"
        elif base is bool:
            kind = "bool"
        elif base is int:
            kind = "int"
        else:
            kind = "text"
        specs.append(
            FieldSpec(
                name=name,
                kind=kind,
                required=info.is_required(),
                identifying=bool((info.json_schema_extra or {}).get("identifying")),
                max_length=max_length,
                ge=ge,
                le=le,
                codes=codes,
                pattern_iso=(name == "nationality"),
            )
        )
    return specs


# Model-level validators of schema.Registration, as SQL over the typed view `t` (true = violated).
MODEL_RULES: list[tuple[str, str, str, str]] = [
    # (rule, field, condition, message)
    ("date-too-early", "date_of_birth", "t.date_of_birth < DATE '1900-01-01'", "date before 1900-01-01"),
    ("date-too-early", "report_date", "t.report_date < DATE '1900-01-01'", "date before 1900-01-01"),
    ("date-too-early", "consent_date", "t.consent_date < DATE '1900-01-01'", "date before 1900-01-01"),
    ("date-too-early", "consent_withdrawn_date", "t.consent_withdrawn_date < DATE '1900-01-01'", "date before 1900-01-01"),
    ("after-export-date", "date_of_birth", "t.date_of_birth > $export_date", "date after the export date"),
    ("after-export-date", "report_date", "t.report_date > $export_date", "date after the export date"),
    ("after-export-date", "consent_date", "t.consent_date > $export_date", "consent date after the export date"),
    ("after-export-date", "consent_withdrawn_date", "t.consent_withdrawn_date > $export_date", "date after the export date"),
    ("date-order", "date_of_birth", "t.date_of_birth > t.report_date", "date of birth after the report date"),
    (
        "date-order",
        "consent_withdrawn_date",
        "t.consent_withdrawn_date < t.consent_date",
        "consent withdrawn before it was given",
    ),
]

FIELD_RULE_MESSAGES = {
    "required": "a value is required",
    "too-long": "text is longer than {max_length} characters",
    "not-a-date": "not a valid date in the format {human_formats}, or a day that does not exist "
                  "(the mapping's date_formats: {formats})",
    "not-an-integer": "not a whole number",
    "out-of-range": "must be between {ge} and {le}",
    "not-yes-no": "not a yes/no value; map it under [values.{field}]",
    "unknown-code": "unknown value for {field}; add it under [values.{field}] in the mapping (see the suggested lines)",
    "not-iso-3166": "not an ISO 3166-1 alpha-2 country code; map the word under [values.nationality]",
}


def raw_column(spec: FieldSpec, prefix: str = "") -> str:
    """Column of `typed` holding a field's text after value mapping (typed fields keep it beside the value)."""
    return f"{prefix}{spec.name}__raw" if spec.kind in ("date", "int", "bool") else f"{prefix}{spec.name}"


def compiled_rules(specs: list[FieldSpec]) -> list[tuple[str, str, str]]:
    """(rule, field, SQL condition true when violated) for every field constraint plus MODEL_RULES."""
    rules: list[tuple[str, str, str]] = []
    for s in specs:
        raw, val = raw_column(s, "t."), f"t.{s.name}"
        if s.required:
            rules.append(("required", s.name, f"{raw} IS NULL"))
        if s.max_length is not None:
            rules.append(("too-long", s.name, f"length({raw}) > {s.max_length}"))
        if s.kind == "date":
            rules.append(("not-a-date", s.name, f"{raw} IS NOT NULL AND {val} IS NULL"))
        elif s.kind == "int":
            rules.append(("not-an-integer", s.name, f"{raw} IS NOT NULL AND {val} IS NULL"))
            bounds = [f"{val} < {s.ge}"] * (s.ge is not None) + [f"{val} > {s.le}"] * (s.le is not None)
            if bounds:
                rules.append(("out-of-range", s.name, " OR ".join(bounds)))
        elif s.kind == "bool":
            rules.append(("not-yes-no", s.name, f"{raw} IS NOT NULL AND {val} IS NULL"))
        elif s.kind == "code":
            rules.append(("unknown-code", s.name, _not_in_codelist(raw, s.codes)))
        if s.pattern_iso:
            rules.append(("not-iso-3166", s.name, _not_in_codelist(raw, sorted(ISO_3166_ALPHA2))))
    rules.extend((rule, fname, cond) for rule, fname, cond, _ in MODEL_RULES)
    return rules


def _not_in_codelist(column: str, codes) -> str:
    """SQL true when a value is present but not one of `codes`.

    A key lookup in a MAP of the codes: 0.06 s per million values, codes or not. `x IN (...)` with the 249 ISO codes
    compared every value against the list (0.25 s); DuckDB turns `IN (SELECT ...)` and long IN lists into joins, and
    a join in the pass would lose the file order its row numbers come from (csvfile.CsvScan); a cast to an ENUM of
    the codes took 5 s per million values that are not codes."""
    return f"{column} IS NOT NULL AND MAP {{{', '.join(f'{quote_literal(c)}: true' for c in codes)}}}[{column}] IS NULL"


def rule_message(rule: str, fname: str, spec: FieldSpec | None, mapping) -> str:
    for r, f, _, message in MODEL_RULES:
        if r == rule and f == fname:
            return message
    template = FIELD_RULE_MESSAGES.get(rule, rule)
    return template.format(
        field=fname,
        max_length=getattr(spec, "max_length", None),
        ge=getattr(spec, "ge", None),
        le=getattr(spec, "le", None),
        formats=", ".join(mapping.date_formats),
        human_formats=" or ".join(human_date_format(f) for f in mapping.date_formats),
    )


HUMAN_DIRECTIVES = {"d": "DD", "e": "D", "m": "MM", "Y": "YYYY", "y": "YY", "B": "MONTH", "b": "MON", "j": "DDD"}


def human_date_format(fmt: str) -> str:
    """A strptime format as people write it: %d-%m-%Y -> DD-MM-YYYY."""
    import re

    return re.sub(r"%(.)", lambda m: "%" if m.group(1) == "%" else HUMAN_DIRECTIVES.get(m.group(1), m.group(0)), fmt)
