"""``headwater perf ...`` commands, one module per area; each exposes ``add_perf_commands(perf_subparsers)``."""
