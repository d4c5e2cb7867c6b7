"""python-data's `sitecustomize` (installed by `make` beside its libraries): figures still open when
the program ends are saved as plots/figure-1.png, plots/figure-2.png, ... in the working directory,
where the service collects them (API.md 1.1), with no change to the program.

The saving is registered with `atexit` just after matplotlib.pyplot is imported: pyplot registers
its own exit handler, which closes every figure, and handlers run last-registered first.
"""

import atexit
import importlib.abc
import importlib.util
import os
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

_WORKING_DIRECTORY = os.getcwd()


def _save_open_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    numbers = pyplot.get_fignums()
    if not numbers:
        return
    folder = os.path.join(_WORKING_DIRECTORY, "plots")
    os.makedirs(folder, exist_ok=True)
    for index, number in enumerate(numbers, 1):
        pyplot.figure(number).savefig(os.path.join(folder, f"figure-{index}.png"))


class _AfterPyplot(importlib.abc.MetaPathFinder):
    """Registers the saving once matplotlib.pyplot has been imported, then steps aside."""

    def find_spec(self, name: str, path: object, target: object = None) -> ModuleSpec | None:
        if name != "matplotlib.pyplot":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader, run_module = spec.loader, spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            atexit.register(_save_open_figures)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _AfterPyplot())
