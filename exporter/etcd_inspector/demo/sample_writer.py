"""Writes sample data into a LOCAL demo or test cluster. The exporter never imports this
module (tests/test_readonly_imports.py checks it): the exporter only reads from etcd."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from aetcd import rpc

from etcd_inspector.etcd.client import grpc_target

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


class SampleWriter:
    def __init__(self, endpoint: str, timeout: float = 10.0) -> None:
        target, _secure = grpc_target(endpoint)
        self._channel = grpc.aio.insecure_channel(target)
        self._kv = rpc.KVStub(self._channel)
        self._timeout = timeout

    async def put(self, key: bytes, value: bytes) -> int:
        """Returns the revision of the write."""
        r = await self._kv.Put(rpc.PutRequest(key=key, value=value), timeout=self._timeout)
        return int(r.header.revision)

    async def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Batched puts, MAX_TXN_OPS per transaction. Returns the number written."""
        batch: list[rpc.RequestOp] = []
        written = 0
        for key, value in items:
            batch.append(rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value)))
            if len(batch) == MAX_TXN_OPS:
                await self._kv.Txn(rpc.TxnRequest(success=batch), timeout=self._timeout)
                written += len(batch)
                batch = []
        if batch:
            await self._kv.Txn(rpc.TxnRequest(success=batch), timeout=self._timeout)
            written += len(batch)
        return written

    async def close(self) -> None:
        await self._channel.close(grace=0)
