"""The scale benchmark's quick run: it must run end to end and fill in issue 13's table.

No wall-clock assertions (the machine running the tests may be busy): the test checks
that every row is there with a value and a target, that the app really loaded and showed
the registry (the bench waits for the tree and the session to hold every instance and for
each put to reach the screen, or fails), and that the etcdctl reference was measured.
"""

from __future__ import annotations

import re

from support.bench import run_bench
from support.etcdctl import require_etcd


def test_scale_bench_quick_fills_the_table() -> None:
    require_etcd()
    result = run_bench("scale_bench.py", "--quick", timeout=240)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    rows = {
        m["figure"].strip(): (m["value"], m["target"], m["verdict"])
        for m in re.finditer(
            r"^\| (?P<figure>[^|]+?) \| (?P<value>[^|]+) \| (?P<target>[^|]*) \| "
            r"(?P<verdict>ok|over|info) \|$",
            out,
            re.M,
        )
    }
    first = rows["first frame after launch - 1-instance [2,000]"]
    assert re.fullmatch(r"-?\d+\.\d\d s", first[0]), first
    # The target is worked out from etcdctl's time for the same keys, in the same run.
    etcdctl = re.search(r"1\.5 x etcdctl (\d+\.\d\d) s \+ 0\.15", first[1])
    assert etcdctl, first
    assert re.search(r"2,000 instances in 20 services: .*etcdctl protobuf \d", out), out
    assert re.fullmatch(r"\d+ MB", rows["resident memory [2,000]"][0])
    idle = rows["idle CPU [2,000]"]
    assert re.fullmatch(r"\d+\.\d %", idle[0]) and "TimeToLive/s" in idle[1], idle
    put = rows["put -> screen, median [2,000]"]
    assert re.fullmatch(r"\d+\.\d ms", put[0]) and put[1].startswith("<= 30 ms"), put
    assert re.search(r"\d+ of \d+ rows within target", out), out
