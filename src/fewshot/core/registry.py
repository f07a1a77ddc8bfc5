"""A registry in miniature: `@REG.register("name")`, `REG.create(name, **kw)`, `REG.names()`."""

from __future__ import annotations

from typing import Any, Callable

from fewshot.core.errors import UserError


class Registry:
    """Named constructors of one kind (methods, backbones, sources).

    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... def square(side=1):
    ...     return side * side
    >>> shapes.create("square", side=3)
    9
    >>> shapes.create("circle")
    Traceback (most recent call last):
    fewshot.core.errors.UserError: unknown shape 'circle'; valid names: square
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = fn
            return fn

        return add

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} '{name}'; valid names: {', '.join(self.names())}")
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)
