"""The files atft ships beside its code: the Helm chart and the run configs, and how ``--config NAME`` finds one.

Why one module: an installed ``atft`` must render and train without the source tree. The wheel carries the
repository's ``helm/atft`` and ``configs/`` as package data of ``atft_cli`` (``atft_cli/chart``,
``atft_cli/configs``; pyproject.toml maps the directories there, so the repository keeps one copy of each),
found through :mod:`importlib.resources`. A source checkout (an editable install) has no such directories
inside ``cli/atft_cli``; there the repository's own ``helm/atft`` and ``configs/`` are the shipped files.

The ``--config`` rule (:func:`resolve_config`), the same for every verb that takes a run config: a value that
names an existing file is that file; a bare name without a directory part (``debug``, ``demo.yaml``) that is
no file in the working directory is the shipped config of that name; anything else is an error naming the
shipped configs.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from atft.errors import InputFileError

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when running from one
_SOURCE_DIRS = {"chart": SOURCE_ROOT / "helm" / "atft", "configs": SOURCE_ROOT / "configs"}


def shipped_dir(name: str) -> Path:
    """The directory of the shipped ``chart`` or ``configs``: package data when installed, else the checkout's.

    A real directory either way: helm reads the chart from the file system (a zipped install is not
    supported, and ``$ATFT_CHART`` can point at an unpacked chart then).
    """
    packaged = importlib.resources.files("atft_cli").joinpath(name)
    if packaged.is_dir():
        return Path(str(packaged))
    return _SOURCE_DIRS[name]


def shipped_configs() -> dict[str, Path]:
    """The shipped run configs by name (file name without ``.yaml``), sorted."""
    folder = shipped_dir("configs")
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def resolve_config(value: Path | None) -> Path | None:
    """``--config VALUE`` -> the file to load (module docstring: the rule). ``None`` stays ``None``.

    Raises:
        InputFileError: ``VALUE`` is a bare name that is neither a file here nor a shipped config.
    """
    if value is None or value.exists() or len(value.parts) != 1:
        return value  # a path with a directory part is the user's file: a missing one fails where it is read
    stem = value.name.removesuffix(".yaml")
    shipped = shipped_configs()
    if stem in shipped:
        return shipped[stem]
    raise InputFileError(
        f"--config {value}: no such file, and no shipped config of that name; shipped: {', '.join(shipped) or 'none'}"
    )
