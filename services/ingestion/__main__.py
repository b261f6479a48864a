"""`python -m headwater.services.ingestion`: run the ingestion service (same as `headwater serve ingestion`)."""

import sys

from headwater.server import run
from headwater.services.ingestion.server import SERVICE

sys.exit(run(SERVICE))
