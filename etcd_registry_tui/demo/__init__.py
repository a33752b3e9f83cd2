"""The demo, beside the data layer and the UI: a private etcd (:mod:`.embedded`, also what
the tests and benchmarks start) and a simulated fleet of services (:mod:`.fleet`) for
``etcd-registry-tui demo`` (:mod:`.run`). The data layer (``registry/``) never imports it."""

from .run import run_demo

__all__ = ["run_demo"]
