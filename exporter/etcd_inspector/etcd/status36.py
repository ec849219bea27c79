"""Status fields etcd 3.6 added, which the protos this client is built from (etcd 3.5's) lack.

etcd v3.6.0 api/etcdserverpb/rpc.proto, message StatusResponse:
  string storageVersion = 11;        // the version of the db file
  int64 dbSizeQuota = 12;            // --quota-backend-bytes
  DowngradeInfo downgradeInfo = 13;  // {bool enabled = 1; string targetVersion = 2;}
and server/etcdserver/api/v3rpc/maintenance.go (Status) always sends downgradeInfo (enabled
false unless a downgrade is in progress) and storageVersion once the member has one.

The decoded StatusResponse keeps them as unknown fields, and re-serialises them unchanged: they
are read back through a message of just these fields, built here at import (no generated code).
On etcd 3.4/3.5 they are absent and every value is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# protobuf comes with grpcio/aetcd; it ships no type stubs (types-protobuf is not a dependency).
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "etcd_inspector.status36"


def _extras_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(
        name="etcd_inspector/status36.proto", package=_PACKAGE, syntax="proto3"
    )
    downgrade = proto.message_type.add(name="DowngradeInfo")
    downgrade.field.add(name="enabled", number=1, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    downgrade.field.add(
        name="targetVersion", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL
    )
    extras = proto.message_type.add(name="StatusExtras")
    extras.field.add(
        name="storageVersion", number=11, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL
    )
    extras.field.add(name="dbSizeQuota", number=12, type=_F.TYPE_INT64, label=_F.LABEL_OPTIONAL)
    extras.field.add(
        name="downgradeInfo", number=13, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
        type_name=f".{_PACKAGE}.DowngradeInfo",
    )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.StatusExtras"))


StatusExtras: Any = _extras_class()


@dataclass(frozen=True)
class Status36:
    storage_version: str | None = None
    # None: the member did not say (etcd < 3.6); else whether a downgrade is enabled.
    downgrade_enabled: bool | None = None
    downgrade_target_version: str | None = None


def status36(serialized: bytes) -> Status36:
    """The 3.6 fields of a serialized StatusResponse (None each where absent)."""
    extras = StatusExtras.FromString(serialized)
    has_downgrade = extras.HasField("downgradeInfo")
    downgrade = extras.downgradeInfo
    return Status36(
        storage_version=extras.storageVersion or None,
        downgrade_enabled=bool(downgrade.enabled) if has_downgrade else None,
        downgrade_target_version=(downgrade.targetVersion or None) if has_downgrade else None,
    )
