"""archive.py: archive files are written whole, in chunks of open descriptors, and a failure leaves none behind."""

from __future__ import annotations

import os
import stat

import pytest

from aggregator.contract.envelope import bundle_filename, sha256_hex
from aggregator.coordinator import archive


def _items(n: int) -> list[tuple[str, bytes]]:
    datas = [f"bundle {i} ".encode() * (i + 1) for i in range(n)]
    return [(sha256_hex(d), d) for d in datas]


def test_every_file_is_written_whole_over_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "_OPEN_AT_ONCE", 3)
    items = _items(8)
    kept = tmp_path / bundle_filename(items[2][0])
    tmp_path.mkdir(exist_ok=True)
    kept.write_bytes(b"already there")  # an existing archive file is kept as it is
    created = archive.write_archive(tmp_path, items)
    assert sorted(created) == sorted(tmp_path / bundle_filename(d) for d, _ in items if d != items[2][0])
    for digest, data in items:
        path = tmp_path / bundle_filename(digest)
        assert path.read_bytes() == (b"already there" if path == kept else data)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in created)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failing_write_leaves_no_file_and_no_descriptor(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "_OPEN_AT_ONCE", 3)
    calls = {"n": 0}
    real = archive._write_all

    def failing(fd, data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(archive, "_write_all", failing)
    before = len(os.listdir(f"/proc/{os.getpid()}/fd")) if os.path.isdir("/proc/self/fd") else None
    with pytest.raises(OSError):
        archive.write_archive(tmp_path / "a", _items(8))
    assert list((tmp_path / "a").iterdir()) == []
    if before is not None:
        assert len(os.listdir(f"/proc/{os.getpid()}/fd")) == before
