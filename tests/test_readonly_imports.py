"""The exporter never writes to etcd: no exporter module may import the sample-data writer.

The writer exists for `demo`, tests and benchmarks only. This runs in a fresh interpreter so
other tests' imports do not hide a violation.
"""

import subprocess
import sys

EXPORTER_MODULES = [
    "etcd_inspector.web.app",
    "etcd_inspector.cli",
    "etcd_inspector.runtime.runtime",
    "etcd_inspector.runtime.scheduler",
    "etcd_inspector.web.families",
    "etcd_inspector.probes",
    "etcd_inspector.inspect",
]


def test_exporter_modules_do_not_import_the_writer():
    code = (
        "import importlib, sys\n"
        f"for m in {EXPORTER_MODULES!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.endswith(('sample_writer', 'sampledata')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_read_rpcs_in_the_adapter():
    """The adapter calls read RPCs only; a write RPC name in it is a review failure."""
    from pathlib import Path

    import etcd_inspector.etcd.client as client

    source = Path(client.__file__).read_text()
    for write_rpc in ("Put(", "DeleteRange(", "Txn(", "Compact(", "Defragment(", "LeaseGrant("):
        assert write_rpc not in source, write_rpc
    # The Alarm RPC goes through raft even to list (a WAL entry per call): alarms are read
    # from Status instead.
    assert '("Alarm"' not in source and "AlarmRequest" not in source
    for read_rpc in ('"Range"', '"Status"', '"HashKV"', '"MemberList"', "Watch("):
        assert read_rpc in source, read_rpc
