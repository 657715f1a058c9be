"""The keys of a binding as a form's hints name them ("n/esc"), after ``[ui.keymap]``.

A modal has no footer: its border and buttons say its keys. They name the keys the keymap gives
the binding, so a remapped key is the one shown.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.dom import DOMNode

SHORT = {"escape": "esc", "question_mark": "?", "slash": "/", "plus": "+", "minus": "-"}


def key_hint(node: DOMNode, binding_id: str, *, first: bool = False) -> str:
    """The keys of the binding ``binding_id`` of ``node``'s class, joined with ``/`` (only
    the first one with ``first``); the keymap's keys when it remaps them."""
    keys = _keymap(node).get(binding_id) or _declared(type(node), binding_id)
    names = [SHORT.get(k.strip(), k.strip()) for k in keys.split(",") if k.strip()]
    return names[0] if first else "/".join(names)


def _keymap(node: DOMNode) -> dict[str, str]:
    # Textual keeps the keymap set by App.set_keymap here (normalized key names); it has no
    # public getter in the pinned version
    return getattr(node.app, "_keymap", {})


def _declared(cls: type, binding_id: str) -> str:
    for klass in cls.__mro__:
        for binding in vars(klass).get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id == binding_id:
                return binding.key
    raise KeyError(f"{cls.__name__} has no binding {binding_id!r}")
