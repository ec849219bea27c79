"""Sample data for the demo: a small Kubernetes-like keyspace with one of each danger."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

from etcd_inspector.demo.sample_writer import SampleWriter

NAMESPACES = ("default", "kube-system", "payments", "search", "monitoring")
RESOURCES = (("pods", 0.5), ("configmaps", 0.2), ("secrets", 0.1), ("events", 0.15),
             ("services/specs", 0.05))  # fmt: skip
BIG_KEY = b"/registry/configmaps/payments/huge-bundle"
BIG_VALUE_BYTES = 300 * 1024  # over the default 100 KiB threshold
REWRITTEN_KEY = b"/registry/leases/kube-system/busy-controller"
HOT_KEY = b"/registry/leases/kube-system/runaway-controller"
CRD_PREFIX = b"/registry/widgets.example.com/widgets/default/"


def ordinary_keys(count: int, seed: int = 42) -> Iterator[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    names = [name for name, _ in RESOURCES]
    weights = [weight for _, weight in RESOURCES]
    for i in range(count):
        resource = rng.choices(names, weights)[0]
        ns = rng.choice(NAMESPACES)
        size = int(rng.lognormvariate(6, 1)) + 16  # ~400 B median, a long tail
        yield f"/registry/{resource}/{ns}/obj-{i:06d}".encode(), rng.randbytes(size)
    for i in range(max(1, count // 50)):
        yield CRD_PREFIX + f"widget-{i:05d}".encode(), b"w" * 200


async def load_sample_data(endpoint: str, keys: int = 5000, rewrites: int = 500) -> None:
    writer = SampleWriter(endpoint)
    try:
        await writer.put_many(ordinary_keys(keys))
        await writer.put(BIG_KEY, b"B" * BIG_VALUE_BYTES)
        # One key cannot appear twice in a transaction: rewrites are single puts, 50 in flight.
        for start in range(0, rewrites, 50):
            await asyncio.gather(
                *(
                    writer.put(REWRITTEN_KEY, str(i).encode())
                    for i in range(start, min(start + 50, rewrites))
                )
            )
    finally:
        await writer.close()
