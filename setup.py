"""Package discovery for the folder mapping in pyproject.toml.

`services/` imports as `headwater.services` and `plugins/` as `headwater.plugins`
(DESIGN.md); setuptools' own discovery would name them top-level packages, so
the subpackages are found here under their mapped names. Everything else is in
pyproject.toml.
"""

from setuptools import find_packages, setup


def mapped(folder: str, prefix: str, exclude: tuple[str, ...] = ()) -> list[str]:
    return [prefix] + [f"{prefix}.{p}" for p in find_packages(folder, exclude=exclude)]


setup(
    packages=find_packages(include=["headwater", "headwater.*"])
    + mapped("services", "headwater.services")
    + mapped("plugins", "headwater.plugins", exclude=("examples", "examples.*")),
)
