"""The confirmation modal answers True only on its verb."""

from __future__ import annotations

import pytest
from textual.app import App

from difpipe_tui.screens.confirm import ConfirmScreen


class _Asker(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[bool | None] = []

    def ask(self) -> None:
        self.push_screen(
            ConfirmScreen("Delete host edge?", "It stays in ~/.ssh/config."), self.answers.append
        )


@pytest.mark.parametrize(
    ("keys", "answer"),
    [(["y"], True), (["n"], False), (["escape"], False), (["enter"], False)],
)
async def test_keys_answer(keys: list[str], answer: bool) -> None:
    app = _Asker()
    async with app.run_test() as pilot:
        app.ask()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(*keys)
        await pilot.pause()
        assert app.answers == [answer]
        assert not isinstance(app.screen, ConfirmScreen)


async def test_buttons_answer() -> None:
    app = _Asker()
    async with app.run_test() as pilot:
        app.ask()
        await pilot.pause()
        await pilot.click("#confirm-yes")
        await pilot.pause()
        app.ask()
        await pilot.pause()
        await pilot.click("#confirm-no")
        await pilot.pause()
        assert app.answers == [True, False]
