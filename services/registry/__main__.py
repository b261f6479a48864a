"""`python -m headwater.services.registry`: run the registry service (same as `headwater serve registry`)."""

import sys

from headwater.server import run
from headwater.services.registry.server import SERVICE

sys.exit(run(SERVICE))
