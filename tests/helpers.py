"""Helpers shared by tests in every folder (importable as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import os


def tree(root) -> set[str]:
    """Every path under ``root``, relative to it."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out
