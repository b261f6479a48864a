"""`headwater up` maps compose's container paths to this machine's."""

from __future__ import annotations

from pathlib import Path

from headwater.cli.up import _home_path


def test_paths_under_the_container_home_move_to_the_local_home():
    home = Path("/tmp/hw")
    assert _home_path("/var/lib/headwater/processing-shared", "/var/lib/headwater", home) == "/tmp/hw/processing-shared"
    assert _home_path("/var/lib/headwater", "/var/lib/headwater/", home) == "/tmp/hw"
    assert _home_path("/var/lib/headwaterx/a", "/var/lib/headwater", home) == "/var/lib/headwaterx/a"
    assert _home_path("true", "/var/lib/headwater", home) == "true"
    assert _home_path("/var/lib/headwater/a", "", home) == "/var/lib/headwater/a"
