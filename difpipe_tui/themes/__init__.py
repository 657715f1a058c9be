"""The console's themes and stylesheet.

Three themes, chosen by ``[ui] theme`` in the config and switchable from the command palette:
``dark`` (the default), ``light`` and ``high-contrast``. Their colours sit close to the 16
ANSI colours so that a 16-colour terminal keeps the contrast; states are also spelled out in
words (``UP``, ``DOWN``), so nothing depends on colour alone. ``NO_COLOR`` is honoured by
Textual itself (monochrome output).
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

CSS_PATH = Path(__file__).with_name("difpipe.tcss")
DEFAULT_THEME = "dark"

THEMES: dict[str, Theme] = {
    "dark": Theme(
        name="dark",
        primary="#3b8eea",
        secondary="#2472c8",
        accent="#e5c07b",
        warning="#e5c07b",
        error="#f14c4c",
        success="#23d18b",
        foreground="#e5e5e5",
        background="#1e1e1e",
        surface="#262626",
        panel="#303030",
        dark=True,
    ),
    "light": Theme(
        name="light",
        primary="#0451a5",
        secondary="#2472c8",
        accent="#795e26",
        warning="#946300",
        error="#cd3131",
        success="#0b7a33",
        foreground="#1e1e1e",
        background="#f5f5f5",
        surface="#ebebeb",
        panel="#dcdcdc",
        dark=False,
        variables={"footer-key-foreground": "#0451a5"},
    ),
    "high-contrast": Theme(
        name="high-contrast",
        primary="#ffff00",
        secondary="#00ffff",
        accent="#ffff00",
        warning="#ffff00",
        error="#ff0000",
        success="#00ff00",
        foreground="#ffffff",
        background="#000000",
        surface="#000000",
        panel="#000000",
        dark=True,
        luminosity_spread=0.0,
        text_alpha=1.0,
        variables={
            "footer-key-foreground": "#ffff00",
            "block-cursor-background": "#ffff00",
            "block-cursor-foreground": "#000000",
            "border": "#ffffff",
            "border-blurred": "#c0c0c0",
        },
    ),
}
