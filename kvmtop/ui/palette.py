"""The command palette's entries, made from key bindings: one definition per action.

A ``Command`` is a ``Binding`` with the palette's title and help for it. ``BindingCommands``
offers the Commands of the app and of the screen under the palette whose action is not
disabled (``check_action`` False hides one; None, shown dimmed in the footer, keeps it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode


@dataclass(frozen=True)
class Command(Binding):
    """A key binding that is also a command palette entry."""

    title: str = ""  # the palette's name for it (the footer shows ``description``)
    help: str = ""


class BindingCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        nodes: tuple[DOMNode, ...] = (self.app, self.screen)
        for node in nodes:
            for binding in type(node).BINDINGS:
                if not isinstance(binding, Command):
                    continue
                _target, name, params = parse(binding.action)
                if node.check_action(name, params) is not False:
                    yield binding.title or binding.description, binding.help, partial(
                        self.app.run_action, binding.action, node)

    async def discover(self) -> Hits:
        for title, help_text, run in self._commands():
            yield DiscoveryHit(title, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, run in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), run, help=help_text)
