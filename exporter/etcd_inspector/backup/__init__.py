"""Backups: snapshot files, the bbolt reader, the restore drill and the pure parts of taking a
snapshot (the `snapshot` command itself is etcd_inspector/snapshot.py)."""
