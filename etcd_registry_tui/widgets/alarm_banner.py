"""The mass-expiry banner: one line across the top while the alarm lasts."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..registry.sanitize import safe_line


class AlarmBanner(Static):
    DEFAULT_CSS = """
    AlarmBanner {
        height: 1;
        background: $error;
        color: $text;
        text-style: bold;
        padding: 0 1;
        display: none;
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.text: str | None = None

    def show(self, text: str | None) -> None:
        """Show ``text`` (service names already display-safe), or hide on ``None``."""
        if text == self.text:
            return
        self.text = text
        self.display = text is not None
        if text is not None:
            self.update(Text(safe_line(text)))
