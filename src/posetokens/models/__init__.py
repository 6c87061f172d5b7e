"""Model families. Importing this package registers every family and zoo variant.

Each module of this package is one family (``tokenpose``, ``mixste``, ...); all are imported here, so a new
family registers itself by existing.
"""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_") and not _info.ispkg:
        importlib.import_module(f"{__name__}.{_info.name}")
