"""Every reader under hostile input: >= 1,000 malformed files from a fixed seed.

Each file (``tests/fuzz_files.py``: TIFF, NPY, DM3/DM4, EMD, SER, MRC, CSV,
folder datasets, benchmark HDF5; truncations, header bit flips, huge declared
sizes, wrong dtypes, pickles, a link to ``/dev/zero``) is opened through the
public API in this process, and the test asserts for each read:

* it succeeds or raises the project's own error types (``READ_ERRORS``);
* the message names the file and says what is wrong in words;
* it returns within :data:`HANG_S` (a hang detector, not a speed test: an
  interval timer interrupts a read that runs past :data:`ABORT_S`);
* it allocates no more than the image size limit, which is lowered to
  :data:`LIMIT_BYTES` for the batch (the CSV limit to a quarter of it) so that
  an unguarded allocation stands out.

Memory guard, subprocess-free as the issue asks: ``tracemalloc`` measures each
read's peak (NumPy reports its array buffers to it, so an allocation from a
declared header shows up however briefly it lived), and, as a backstop for
buffers tracemalloc does not see (HDF5's C library, mmap), the soft address
space limit (``RLIMIT_AS``) is set to the process's current size + 4 GiB for the
batch and restored after: a read that escapes the checks fails with
``MemoryError`` instead of swapping the machine. Both are process-wide only
for the duration of the batch, and the hard limit is never touched.
"""

from __future__ import annotations

import logging
import re
import signal
import time
import tracemalloc
import warnings
from collections import Counter

import pytest

from fuzz_files import MUST_REFUSE, generate, names_the_file, read
from napari_atombench.core.io import MAX_CSV_BYTES_ENV, MAX_IMAGE_BYTES_ENV, READ_ERRORS

HANG_S = 2.0
ABORT_S = 10.0
LIMIT_BYTES = 64 * 2**20
KINDS = {"tiff", "npy", "dm3", "dm4", "emd", "ser", "mrc", "csv", "folder", "h5"}


def _address_space_backstop():
    """Lower the soft RLIMIT_AS to the current size + 4 GiB; return a function restoring it."""
    try:
        import resource
    except ImportError:  # not POSIX: tracemalloc alone
        return lambda: None
    with open("/proc/self/status") as status:
        vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = vm_kib * 1024 + 4 * 2**30
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _on_alarm(signum, frame):
    raise TimeoutError(f"read still running after {ABORT_S} s")


def _words(message: str, item) -> int:
    text = message.replace(str(item.path), " ").replace(item.path.name, " ")
    return len(re.findall(r"\b[A-Za-z]{3,}\b", text))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Read every generated file once; (item, error or None, seconds, peak bytes) each."""
    items = generate(tmp_path_factory.mktemp("fuzz"))
    for item in items:  # import every reader module first: first imports are not reads
        if item.variant == "valid":
            read(item)
    mp = pytest.MonkeyPatch()
    mp.setenv(MAX_IMAGE_BYTES_ENV, str(LIMIT_BYTES))
    mp.setenv(MAX_CSV_BYTES_ENV, str(LIMIT_BYTES // 4))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    restore_limit = _address_space_backstop()
    results = []
    logging.disable(logging.CRITICAL)  # corrupt files make the libraries log a lot
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracemalloc.start()
            for item in items:
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                error = None
                start = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, ABORT_S)
                try:
                    try:
                        read(item)
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                except Exception as exc:  # noqa: BLE001 -- classified by the tests below
                    error = exc
                seconds = time.perf_counter() - start
                results.append((item, error, seconds, tracemalloc.get_traced_memory()[1] - base))
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
        restore_limit()
        signal.signal(signal.SIGALRM, previous)
        mp.undo()
    return results


def _report(rows) -> str:
    return "\n".join(f"{item.kind} {item.path.name} [{item.variant}]: {detail}" for item, detail in rows[:20])


def test_at_least_1000_files_across_every_format(outcomes):
    kinds = Counter(item.kind for item, *_ in outcomes)
    assert sum(kinds.values()) >= 1000
    assert set(kinds) == KINDS
    assert min(kinds.values()) >= 50, kinds
    # the valid files of each format read: the readers are not refusing everything
    assert {item.kind for item, error, *_ in outcomes if error is None and item.variant == "valid"} == KINDS


def test_only_project_errors(outcomes):
    other = [(item, f"{type(error).__name__}: {error}") for item, error, *_ in outcomes
             if error is not None and not isinstance(error, READ_ERRORS)]
    assert not other, f"{len(other)} reads raised other exceptions:\n{_report(other)}"


def test_every_message_names_the_file_in_words(outcomes):
    bad = [(item, str(error)) for item, error, *_ in outcomes
           if isinstance(error, READ_ERRORS) and not (names_the_file(item, str(error)) and _words(str(error), item) >= 2)]
    assert not bad, f"{len(bad)} messages without the file name or words:\n{_report(bad)}"


def test_no_read_hangs(outcomes):
    slow = [(item, f"{seconds:.2f} s") for item, _, seconds, _ in outcomes if seconds > HANG_S]
    assert not slow, f"{len(slow)} reads over {HANG_S} s:\n{_report(slow)}"


def test_no_allocation_beyond_the_limit(outcomes):
    big = [(item, f"peak {peak / 2**20:.0f} MiB") for item, _, _, peak in outcomes if peak > LIMIT_BYTES]
    assert not big, f"{len(big)} reads allocated over {LIMIT_BYTES / 2**20:.0f} MiB:\n{_report(big)}"


def test_hostile_variants_are_refused(outcomes):
    """Huge declared sizes, pickles, /dev/zero and implausible pixel sizes never read as OK."""
    accepted = [(item, "read without error") for item, error, *_ in outcomes
                if error is None and item.variant.startswith(MUST_REFUSE)]
    assert not accepted, _report(accepted)
