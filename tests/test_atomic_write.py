"""Atomic writes: old-or-new under SIGKILL, stale temporary files cleaned, symlinks followed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_atombench.core.io import ATOMIC_TMP_SUFFIX, STALE_TMP_AGE_S, atomic_write_bytes, atomic_write_text

PAYLOAD_BYTES = 4 << 20  # large enough that a kill often lands inside a write

#: A single-threaded helper that imports the writer once and forks one writing child per
#: trial (a fresh interpreter per trial would take seconds); the test SIGKILLs the child.
WRITER = r"""
import hashlib, os, sys
from napari_atombench.core.io import atomic_write_bytes

def payload(version, size):
    body = hashlib.sha256(str(version).encode()).digest() * (size // 32)
    head = version.to_bytes(8, "little") + len(body).to_bytes(8, "little")
    return head + body + hashlib.sha256(head + body).digest()

for line in sys.stdin:
    command, target, first = line.split()
    if command == "go":
        pid = os.fork()
        if pid == 0:
            version = int(first)
            while True:
                atomic_write_bytes(target, payload(version, %d))
                version += 1
        print(pid, flush=True)
    elif command == "reap":
        os.waitpid(int(first), 0)
        print("reaped", flush=True)
""" % PAYLOAD_BYTES


def _version_of(data: bytes) -> int:
    """The version a complete file holds; AssertionError for a torn or corrupt one."""
    assert len(data) >= 48, f"truncated file ({len(data)} bytes)"
    length = int.from_bytes(data[8:16], "little")
    assert len(data) == 16 + length + 32, "wrong length: torn write"
    assert hashlib.sha256(data[:-32]).digest() == data[-32:], "checksum mismatch: corrupt file"
    return int.from_bytes(data[:8], "little")


def _temporaries(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(ATOMIC_TMP_SUFFIX))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill test forks writers (POSIX)")
def test_sigkill_during_writes_leaves_old_or_new_and_next_write_cleans_up(tmp_path):
    """50 SIGKILLs at random times (fixed seed) while a child rewrites a 4 MiB file
    through a symlink: the file is always a complete version, never older than the
    last one seen, stale temporaries of the dead writer are removed by the next
    write, and the link stays a link to the updated target."""
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    real, link = real_dir / "labels.bin", link_dir / "labels.bin"
    link.symlink_to(real)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    helper = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
    rng = np.random.default_rng(13)
    outcomes = {"old": 0, "new": 0, "stale": 0}
    try:
        for trial in range(50):
            first = 1000 * (trial + 1)  # this child's versions: first, first + 1, ...
            helper.stdin.write(f"go {link} {first}\n")
            helper.stdin.flush()
            pid = int(helper.stdout.readline())
            time.sleep(float(rng.uniform(0.0, 0.15)))
            os.kill(pid, signal.SIGKILL)
            helper.stdin.write(f"reap {link} {pid}\n")
            helper.stdin.flush()
            assert helper.stdout.readline().strip() == "reaped"
            assert link.is_symlink() and os.readlink(link) == str(real)
            assert _temporaries(link_dir) == []  # temporaries go beside the real file
            data = real.read_bytes() if real.exists() else None
            if data in (None, b"old"):  # killed before its first write finished
                outcomes["old"] += 1
            else:
                assert first <= _version_of(data) < first + 1000  # complete, and this child's
                outcomes["new"] += 1
            stale = _temporaries(real_dir)
            assert all(f".{pid}." in name for name in stale)  # only the killed writer's
            outcomes["stale"] += bool(stale)
            atomic_write_text(link, "old")  # the next write of the same target...
            assert _temporaries(real_dir) == []  # ...removes the dead writer's temporaries
            assert link.is_symlink() and real.read_bytes() == b"old"
    finally:
        helper.stdin.close()
        helper.wait(timeout=30)
    print(outcomes)
    assert outcomes["old"] + outcomes["new"] == 50
    # a kill inside a write (most of a writer's time is spent writing and syncing 4 MiB)
    # leaves a temporary file: without any, the cleanup above was never exercised
    assert outcomes["stale"] >= 1


def test_stale_temporary_of_a_dead_process_is_removed_live_one_kept(tmp_path):
    target = tmp_path / "out.csv"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = tmp_path / f".out.csv.{dead_pid}.abc{ATOMIC_TMP_SUFFIX}"
        alive = tmp_path / f".out.csv.{live.pid}.def{ATOMIC_TMP_SUFFIX}"
        old_alive = tmp_path / f".out.csv.{live.pid}.ghi{ATOMIC_TMP_SUFFIX}"
        other = tmp_path / f".other.csv.{dead_pid}.abc{ATOMIC_TMP_SUFFIX}"
        for path in (dead, alive, old_alive, other):
            path.write_bytes(b"partial")
        long_ago = time.time() - STALE_TMP_AGE_S - 60
        os.utime(old_alive, (long_ago, long_ago))
        atomic_write_text(target, "x_px,y_px\n")
        assert not dead.exists()  # its writer is gone
        assert alive.exists()  # a write in progress elsewhere is left alone
        assert not old_alive.exists()  # too old to be in progress (pids are reused)
        assert other.exists()  # another target's files are not ours to judge
        assert target.read_text() == "x_px,y_px\n"
    finally:
        live.kill()
        live.wait()


def test_write_through_symlink_updates_the_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "data" / "labels.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "labels.csv"
    link.symlink_to(real)
    assert atomic_write_text(link, "new\n") == link
    assert link.is_symlink() and real.read_text() == "new\n" and link.read_text() == "new\n"
    dangling = tmp_path / "later.csv"
    dangling.symlink_to(tmp_path / "data" / "later_target.csv")
    atomic_write_text(dangling, "created\n")
    assert dangling.is_symlink() and (tmp_path / "data" / "later_target.csv").read_text() == "created\n"


def test_folder_as_target_or_parent_is_a_clear_oserror(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder") as info:
        atomic_write_bytes(tmp_path / "folder", b"x")
    assert info.value.filename == str(tmp_path / "folder")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        atomic_write_bytes(tmp_path / "file" / "sub" / "out.csv", b"x")
    assert _temporaries(tmp_path) == [] and (tmp_path / "file").read_text() == "x"


def test_mode_of_existing_file_is_kept(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.stat().st_mode & 0o777 == 0o640 and target.read_text() == "new"
