"""The image compose.yaml builds runs the services: no container engine runs here, so what
can be checked without one is checked on the Dockerfile's text against the project's own
sources of truth (pyproject's extras, the Makefile's kernel modules, compose.yaml's ports)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_image_installs_every_extra_the_services_use():
    """`pip install .` alone is the SDK (pyproject): the services need [server] and the
    backends and outputs compose.yaml can select; [spark] is a client, [test] not shipped."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = re.search(r'pip install [^\n]*"\.\[([a-z,]+)\]"', DOCKERFILE)
    assert installed, "the Dockerfile installs the project with extras"
    assert set(installed.group(1).split(",")) == extras - {"spark", "test", "all"}


def test_the_image_builds_the_kernels_make_setup_builds():
    makefile = (ROOT / "Makefile").read_text()
    wanted = re.search(r"^KERNEL_MODULES := (.+)$", makefile, re.M).group(1).split()
    run = DOCKERFILE.partition("-m headwater.jit")[2].split("\n\n")[0]
    assert run, "the Dockerfile builds the kernels ahead of time"
    assert re.findall(r"headwater\.services\.[\w.]+", run) == wanted


def test_every_port_compose_publishes_is_exposed():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    exposed = set(re.search(r"^EXPOSE (.+)$", DOCKERFILE, re.M).group(1).split())
    published = {str(p).rsplit(":", 1)[-1] for svc in compose["services"].values()
                 if svc.get("image", "headwater:local") == "headwater:local" and "build" in svc
                 for p in svc.get("ports", [])}
    assert published and published <= exposed
