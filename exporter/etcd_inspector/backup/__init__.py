"""Backups: snapshot files (the `snapshot` command, the `backup` probe) and a bbolt reader."""
