"""The registry of training methods: one record a method, each declared in its own module of this package.

Every module here but :mod:`~tuner.methods.record` declares one method as ``METHOD``, a
:class:`~tuner.methods.record.Method`, in a module named as the method; :data:`METHODS` finds them all. Adding a
method is adding its record file here and its trainer module (the record's ``trainer``, ``tuner/<method>.py``):
the recipe's ``method`` values, TRL's config and lorag's defaults for it, ``python -m tuner check`` and the
trainer's data follow from the record. The records import nothing heavy (TRL only when a config class is asked
for); this package knows nothing about data files, models or trainers.
"""

from __future__ import annotations

import importlib
import pkgutil

from tuner.methods.record import Method


def _registered() -> dict[str, Method]:
    found = {}
    for module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
        if module == "record":
            continue
        method = importlib.import_module(f"{__name__}.{module}").METHOD
        if method.name != module:
            raise ImportError(f"{__name__}.{module} declares method '{method.name}': name the module as the method")
        found[method.name] = method
    return found


METHODS: dict[str, Method] = _registered()
"""Method name -> its record, by name."""
