"""organisation/home.py: the home folder keeps its spending file under one name, also for homes made earlier."""

from __future__ import annotations

import re

import pytest

from aggregator.organisation.home import init_org, load_org


def test_a_home_made_with_the_earlier_file_name_keeps_its_spending(tmp_path):
    home = tmp_path / "home"
    init_org("shelter-a", "non_investigative", reporter_type="shelter", home=home)
    (home / "ledger.jsonl").write_text('{"digest": "d"}\n', encoding="utf-8")  # what homes before 0.2 wrote
    path = load_org(home).spending_path
    assert path.name == "spending.jsonl" and path.read_text(encoding="utf-8") == '{"digest": "d"}\n'
    assert not (home / "ledger.jsonl").exists()


def test_linkage_key_file_is_new_private_hex_and_never_overwritten(tmp_path):
    from aggregator.errors import ConfigError
    from aggregator.organisation.home import load_linkage_key, new_linkage_key

    path = new_linkage_key(tmp_path / "keys" / "shared-linkage.key")
    text = path.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", text)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_linkage_key(path) == text.strip().encode("ascii")
    assert new_linkage_key(tmp_path / "other.key").read_text() != text  # random, not fixed
    with pytest.raises(ConfigError, match="already exists"):
        new_linkage_key(path)
    assert path.read_text() == text


def test_git_work_tree_is_found_from_a_folder_that_does_not_exist_yet(tmp_path):
    from aggregator.organisation.home import inside_git_work_tree

    (tmp_path / "clone" / ".git").mkdir(parents=True)
    assert inside_git_work_tree(tmp_path / "clone" / ".aggregator") == tmp_path / "clone"
    assert inside_git_work_tree(tmp_path / "elsewhere") is None
