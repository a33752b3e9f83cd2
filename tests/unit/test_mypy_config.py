"""The mypy configuration keeps its promise: the whole package is checked, and the data
layer with every flag of ``mypy --strict``.

``strict = true`` inside a ``[[tool.mypy.overrides]]`` table turns strictness on for every
module (https://github.com/python/mypy/issues/11401), so pyproject.toml lists the flags one
by one; this test fails when mypy grows a strict flag the list lacks.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from mypy.main import define_options

ROOT = Path(__file__).resolve().parents[2]
DATA_LAYER = {"etcd_registry_tui.registry", "etcd_registry_tui.registry.*"}


def _mypy_config() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["mypy"]


def test_the_whole_package_is_checked() -> None:
    assert _mypy_config()["files"] == ["etcd_registry_tui"]


def test_the_data_layer_override_holds_every_strict_flag() -> None:
    config = _mypy_config()
    overrides = [o for o in config["overrides"] if set(o["module"]) == DATA_LAYER]  # type: ignore[attr-defined,index]
    assert len(overrides) == 1
    override = overrides[0]
    assert "strict" not in override, "strict = true in an override leaks to every module"
    _, _, strict_assignments = define_options()
    assert strict_assignments, "mypy's list of strict flags came back empty"
    missing = []
    for flag, value in strict_assignments:
        # A few strict flags are global-only in mypy; those sit in [tool.mypy] itself.
        if override.get(flag, config.get(flag)) != value:
            missing.append(f"{flag} = {str(value).lower()}")
    assert not missing, f"add to the data layer's mypy override: {missing}"


def test_the_widgets_keep_no_unneeded_type_ignore() -> None:
    widgets = {"etcd_registry_tui.widgets", "etcd_registry_tui.widgets.*"}
    overrides = [o for o in _mypy_config()["overrides"] if set(o["module"]) == widgets]  # type: ignore[attr-defined,index]
    assert len(overrides) == 1, "pyproject.toml needs one mypy override for the widgets"
    assert overrides[0].get("warn_unused_ignores") is True
