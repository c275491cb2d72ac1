"""docs/api.md documents the whole public API: every name of ``np_draw.__all__`` and every public function and
class of np_draw's modules (regenerate it with ``python scripts/make_api_docs.py``)."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import np_draw

API = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
DOCUMENTED = set(re.findall(r"^- \*\*`([\w.]+)", API, re.MULTILINE))


def test_every_exported_name_is_documented():
    missing = sorted(set(np_draw.__all__) - DOCUMENTED)
    assert not missing, f"docs/api.md lacks {missing}: run python scripts/make_api_docs.py"


def test_every_public_function_and_class_of_the_modules_is_documented():
    missing = []
    for info in pkgutil.iter_modules(np_draw.__path__):
        module = importlib.import_module(f"np_draw.{info.name}")
        for name, obj in vars(module).items():
            if (not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
                    and obj.__module__ == module.__name__ and f"np_draw.{info.name}.{name}" not in DOCUMENTED):
                missing.append(f"np_draw.{info.name}.{name}")
    assert not missing, f"docs/api.md lacks {missing}: run python scripts/make_api_docs.py"
