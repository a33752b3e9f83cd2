"""The registry layouts real frameworks write into etcd, recognised and written.

:func:`recognise` names the framework of one key-value (:class:`Recognised`), or says it is
a framework's placeholder key (:data:`PLACEHOLDER`), or None. Each framework's module cites
the source file its rules come from and can write what that framework's registrar writes.
"""

from .base import FRAMEWORKS, PLACEHOLDER, Layout, Recognised
from .recognise import recognise

__all__ = ["FRAMEWORKS", "PLACEHOLDER", "Layout", "Recognised", "recognise"]
