"""The errors of a rejected manifest: every problem, each named by its field path.

Owns: FieldError (one problem: path, message, optional location) and ManifestError
(a manifest rejected whole, listing every FieldError).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.state.errors import StateError


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with a manifest: the field's path and what is wrong with it.

    `location` (optional) says where the manifest came from, e.g. "pods.yaml:12 (document 2)".
    """

    path: str
    message: str
    location: str = ""

    def __str__(self) -> str:
        parts = [p for p in (self.location, self.path) if p]
        return ": ".join([*parts, self.message])


class ManifestError(StateError, ValueError):
    """A manifest rejected whole; `errors` lists every problem found."""

    def __init__(self, errors: tuple[FieldError, ...] | list[FieldError]):
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))
