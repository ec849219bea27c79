"""A fault harness for real local etcd clusters (tests, benchmarks and drills).

Modelled on etcd's tests/robustness failpoints: a fault is a small named object with
`inject()`, `heal()` and `unavailable()` (why this cluster cannot take it), and
`with fault.injected():` always heals. Per member:

- network (peerproxy, network): delay with jitter, a lossy link, a blackhole, on the member's
  own peer links through userspace TCP proxies its advertised peer URL points at;
- disk (resources, disk): a write-IOPS throttle (cgroup v1 blkio) and a full tmpfs;
- process (process): SIGKILL + restart, SIGSTOP or cgroup-freezer pause;
- CPU (resources): a CFS quota.

Needs root and cgroup v1 blkio, cpu and freezer controllers. Everything it creates carries
PREFIX and its creator's PID (cgroup and mount names, the members' environment); `sweep()`
removes what a dead harness left, `sweep(include_own=True)` what this one left at its end.
"""

from etcd_inspector.demo.faults.base import Fault
from etcd_inspector.demo.faults.cluster import FaultCluster, start_fault_cluster
from etcd_inspector.demo.faults.disk import DiskFull
from etcd_inspector.demo.faults.network import PeerBlackhole, PeerDelay, PeerLoss
from etcd_inspector.demo.faults.owned import PREFIX, FaultError
from etcd_inspector.demo.faults.peerproxy import LinkRule, PeerNetwork
from etcd_inspector.demo.faults.process import Kill, Pause
from etcd_inspector.demo.faults.resources import CpuQuota, DiskThrottle
from etcd_inspector.demo.faults.sweep import leftovers, sweep

__all__ = [
    "PREFIX",
    "CpuQuota",
    "DiskFull",
    "DiskThrottle",
    "Fault",
    "FaultCluster",
    "FaultError",
    "Kill",
    "LinkRule",
    "Pause",
    "PeerBlackhole",
    "PeerDelay",
    "PeerLoss",
    "PeerNetwork",
    "leftovers",
    "start_fault_cluster",
    "sweep",
]
