"""What can go wrong in the lake, by exit code of the `lake` command."""
from __future__ import annotations


class LakeError(Exception):
    """A problem found in the lake or while changing it: exit code 1."""

    exit_code = 1


class BadInput(LakeError):
    """The command cannot apply to what was asked (missing path, unknown zone...): exit code 2."""

    exit_code = 2
