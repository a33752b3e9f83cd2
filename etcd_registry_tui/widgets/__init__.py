"""Textual widgets."""

from .registry_tree import RegistryTree as RegistryTree
