"""What one run of a strategy did, typed: ``ponder.details`` in the response, read by metrics.

Each strategy that reports something subclasses :class:`Details` with its own
fields (PDR's rounds and workspaces, Self-Consistency's vote ...). The server
reads the parts every strategy may have through methods, never by parsing
the JSON form.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ponder.workspace import Cut, Workspace


class WorkspaceInfo(BaseModel):
    """A bounded workspace a strategy built: its size in the engine's tokens, and its cut."""

    model_config = ConfigDict(frozen=True)

    tokens: int
    cut: Cut | None = None
    #: A workspace of several drafts: each draft's cut (None: kept whole).
    draft_cuts: list[Cut | None] | None = None

    @classmethod
    def of(cls, workspace: Workspace) -> WorkspaceInfo:
        return cls(tokens=workspace.tokens, cut=workspace.cut)


class Details(BaseModel):
    """The base of every strategy's details; empty on its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def workspaces(self) -> list[WorkspaceInfo]:
        """Every workspace the run built, in order (none by default)."""
        return []

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``ponder.details``."""
        return self.model_dump(mode="json", exclude_none=True)
