"""`python -m headwater.services.processing`: run the processing service (same as `headwater serve processing`)."""

import sys

from headwater.server import run
from headwater.services.processing.server import SERVICE

sys.exit(run(SERVICE))
