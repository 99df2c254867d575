"""The mapping file: read and checked (pydantic's Mapping), checked against the export's columns, and the value map
it makes with the built-in aliases and codes (what validate.py maps a value through)."""

from __future__ import annotations

import difflib
from pathlib import Path

from ..contract.codelists import DEFAULT_VALUE_ALIASES
from ..contract.nationalities import nationality_aliases
from ..errors import MappingError
from .rules import field_specs


def load_mapping(path: Path):
    """Read and check a mapping TOML file."""
    import tomllib

    from pydantic import ValidationError

    from ..contract.schema import Mapping

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"mapping file not found: {path}") from None
    except UnicodeDecodeError:
        raise MappingError(f"mapping file {path.name} is not UTF-8") from None
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {path.name}: {exc.strerror or type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping file {path.name} is not valid TOML: {exc}") from None
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise MappingError(f"mapping file {path.name}: {where}: {first['msg']}") from None


def value_map_rows(mapping) -> list[tuple[str, str, str]]:
    """(field, lower-cased source value, code): the mapping's own values first, then built-in aliases and the codes."""
    rows: dict[tuple[str, str], str] = {}
    for spec in field_specs():
        if spec.kind == "code":
            for code in spec.codes:
                rows.setdefault((spec.name, code.lower()), code)
    for source, code in nationality_aliases().items():  # the BRP's Tabel 32: "poolse", "0072", ...
        rows[("nationality", source)] = code
    for fname, aliases in DEFAULT_VALUE_ALIASES.items():
        for source, code in aliases.items():
            rows[(fname, source.lower())] = code
    for fname, values in mapping.values.items():
        for source, code in values.items():
            rows[(fname, source.strip().lower())] = code
    return [(f, s, c) for (f, s), c in rows.items()]


def check_columns(con, mapping, source_columns: list[str]) -> None:
    present = set(source_columns)
    for fname, column in mapping.columns.items():
        if column not in present:
            near = difflib.get_close_matches(column, source_columns, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise MappingError(
                f'mapping entry [columns] {fname} = "{column}": the export has no such column{hint} '
                f"(columns found: {', '.join(source_columns[:30])})"
            )


NO_RECORD_ID_NOTE = (
    "the mapping names no record_id column: rows are identified by their row number as this report shows it "
    "(a spreadsheet's row number for CSV and XLSX), which stays on this machine and never leaves in a bundle"
)


def mapping_notes(mapping) -> list[str]:
    """What the report should tell the data steward about the mapping itself."""
    return [] if "record_id" in mapping.columns else [NO_RECORD_ID_NOTE]
