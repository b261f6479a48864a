"""`python -m headwater.services.sink`: run the sink service (same as `headwater serve sink`)."""

import sys

from headwater.services.sink.server import SERVICE

from headwater.server import run

sys.exit(run(SERVICE))
