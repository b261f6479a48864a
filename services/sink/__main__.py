"""`python -m headwater.services.sink`: run the sink service (same as `headwater serve sink`)."""

import sys

from headwater.server import run
from headwater.services.sink.server import SERVICE

sys.exit(run(SERVICE))
