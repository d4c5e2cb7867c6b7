"""executor: runs untrusted programs for other programs.

`create_app` is imported lazily so that importing the sandbox never imports Flask.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from executor.app import create_app

        return create_app
    raise AttributeError(f"module 'executor' has no attribute {name!r}")
