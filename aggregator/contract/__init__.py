"""What crosses the wire, imported by organisations, the coordinator, auditors and computing parties alike:
the pydantic models, the codelists, canonical JSON and the signed envelope, keys, the catalogue of refusal reasons.
"""
