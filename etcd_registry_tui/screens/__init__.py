"""Modal and full-screen views of the dashboard. They never talk to etcd: they collect
input or show data and hand results back with ``dismiss``."""

from .confirm import ConfirmScreen
from .help import LEGEND, HelpScreen
from .inspect import InspectScreen
from .register import RegisterRequest, RegisterScreen, free_port

__all__ = [
    "LEGEND",
    "ConfirmScreen",
    "HelpScreen",
    "InspectScreen",
    "RegisterRequest",
    "RegisterScreen",
    "free_port",
]
