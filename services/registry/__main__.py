"""`python -m headwater.services.registry`: run the registry service (same as `headwater serve registry`)."""

import sys

from headwater.services.registry.server import SERVICE

from headwater.server import run

sys.exit(run(SERVICE))
