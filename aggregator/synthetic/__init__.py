"""The synthetic nation and the end-to-end demo (`aggregator synth`, `aggregator demo`).

  nation.py         make_nation: writes the nation (exports, mappings, manifest, truth); truth and consent-only counts
  population.py     who the true victims are and which organisations know them (shares from docs/figures.md)
  organisations.py  the catalogue of synthetic organisations
  names.py          name and country pools
  styles.py         how each organisation writes its export, and its mapping file
  writers.py        CSV, JSONL, XLSX and Parquet writers
  demo.py           run_demo: the nation submitted, merged and compared with the truth

Kept light on purpose: nothing is imported here, so `aggregator --help` stays fast.
"""
