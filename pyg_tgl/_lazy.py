"""PEP 562 lazy attributes, so that importing a pyg_tgl package loads none of its submodules."""
from importlib import import_module
from typing import Any, Callable, Dict, List, Tuple


def lazy_attributes(package: str, attributes: Dict[str, str]
                    ) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """Returns ``(__getattr__, __dir__)`` for ``package``, resolving each name in ``attributes``
    (name -> module path) on first access."""

    def __getattr__(name: str) -> Any:
        if name in attributes:
            return getattr(import_module(attributes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(set(vars(import_module(package))) | set(attributes))

    return __getattr__, __dir__
