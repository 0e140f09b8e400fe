"""Unpickling a registered model, including one an earlier Retain pickled under names this one changed.

A pickle names each object's class by module and name. Registered models outlive renames, so the classes
an earlier release held under another name are looked up where they live now, and its models still load.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

#: a module an earlier Retain pickled classes from -> the module that holds them now
MOVED_MODULES = {"training.causal.dr": "training.causal.doubly_robust"}
#: (module, class) as an earlier Retain pickled it -> (module, class) now, where the class itself was renamed
RENAMED_CLASSES = {("training.causal.dr", "Share"): ("training.causal.doubly_robust", "RelativeEffect")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module, name = RENAMED_CLASSES.get((module, name), (MOVED_MODULES.get(module, module), name))
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """The object pickled in `data`, with earlier Retain class names mapped to today's."""
    return _Unpickler(io.BytesIO(data)).load()
