"""schema.py: the committed JSON Schemas are exactly what the models generate."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from aggregator.contract.schema import json_schemas, Mapping, Registration, SCHEMA_DIR


def test_committed_json_schemas_match_the_models():
    generated = json_schemas()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == generated, "schemas/ drifted from the models: run `python -m aggregator.contract.schema`"


def test_registration_is_strict_and_closed():
    ok = {"record_id": "r", "person_id": "p", "report_date": "2025-01-02", "form": "sexual"}
    Registration.model_validate_json(__import__("json").dumps(ok))
    with pytest.raises(ValidationError):
        Registration.model_validate({**ok, "report_date": "2025-01-02"})  # strict python mode: a str is no date
    with pytest.raises(ValidationError):
        Registration.model_validate({**ok, "report_date": dt.date(2025, 1, 2), "shoe_size": 42})
    with pytest.raises(ValidationError):
        Registration.model_validate({**ok, "report_date": dt.date(2025, 1, 2), "age": "12"})


def test_mapping_names_missing_required_columns():
    with pytest.raises(ValidationError, match="report_date"):
        Mapping.model_validate({"columns": {"record_id": "a", "person_id": "b", "form": "c"}})
    with pytest.raises(ValidationError, match="shoe"):
        Mapping.model_validate({"columns": {"record_id": "a", "person_id": "b", "form": "c", "report_date": "d", "shoe": "e"}})
