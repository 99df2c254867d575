"""organisation/home.py: the home folder keeps its spending file under one name, also for homes made earlier."""

from __future__ import annotations

from aggregator.organisation.home import init_org, load_org


def test_a_home_made_with_the_earlier_file_name_keeps_its_spending(tmp_path):
    home = tmp_path / "home"
    init_org("shelter-a", "non_investigative", reporter_type="shelter", home=home)
    (home / "ledger.jsonl").write_text('{"digest": "d"}\n', encoding="utf-8")  # what homes before 0.2 wrote
    path = load_org(home).spending_path
    assert path.name == "spending.jsonl" and path.read_text(encoding="utf-8") == '{"digest": "d"}\n'
    assert not (home / "ledger.jsonl").exists()
