"""The registry's past: what is held (store), read back from etcd's MVCC (read), why keys
went (reasons), alarms over live events, and views of it (timeline, view)."""
