"""Many writers on one index folder (issue 13 items 1-3): nothing committed is lost, ids are never reused,
clean-up never deletes another save's files, and a busy lock is a one-line conflict, not a hang."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from simsearch.index import ExemplarIndex
from tests.unit.index.test_concurrency import _new_index

ROOT = Path(__file__).resolve().parents[3]


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import simsearch.score.modes  # registers the scoring modes whose `bank` an add calls
    from simsearch.index import NewExemplar, update_index

    folder, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    for round_ in range(rounds):
        item = NewExemplar(f"{name}-{round_}.png", sha256=f"{name}-{round_}")
        _, ids = update_index(folder, lambda index: index.add([item], rng.normal(size=(1, 8))), wait=120)
        print(ids[0], flush=True)  # acknowledged
""")


def test_three_concurrent_writer_processes_over_20_rounds_lose_nothing(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), f"w{n}", "20"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(3)]
    acknowledged = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        acknowledged += [int(line) for line in out.split()]
    index = ExemplarIndex.load(folder)
    assert len(acknowledged) == 60 and len(set(acknowledged)) == 60  # every id given out once
    assert set(acknowledged) <= set(index.exemplars) and len(index) == 63  # and every one is there
    assert index.next_id == 63
