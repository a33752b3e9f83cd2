"""The etcd client side: the connection (one retry policy), its settings, errors, retry timing
and timed waits."""
