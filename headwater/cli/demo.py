"""``headwater demo``: the book's pipeline on this machine (what ``make up`` runs).

Starts compose.yaml's services (``headwater up``), creates the hub ``trips``
(4 partitions), the dashboard dataset ``trips-per-location`` and the job
``jobs/trips-per-location`` running the book's query (trips per start location
per 10-second tumbling window, by event time), then sends generated trips at
``--rate`` events/s until Ctrl-C, so the live dashboard fills.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from headwater.config import headwater_home

__all__ = ["add_commands"]


def _demo(args: argparse.Namespace) -> int:
    import json

    from headwater.cli.up import _pidfile, _write_pids, path_hint, start_stack, stop_stack
    from headwater.pipeline import local_connection, send_trips, setup_pipeline
    from headwater.supervisor import Supervisor, compose_policies

    policies = compose_policies(args.file)
    procs = start_stack(args.file, ephemeral_ports=args.ephemeral_ports)
    # compose's restart: policies, as `headwater up`; none after `headwater down` took the pid file
    supervisor = Supervisor(procs, policies, stopped=lambda: not _pidfile().exists(),
                            on_restart=lambda _: _write_pids(procs))
    endpoints = json.loads((headwater_home() / "endpoints.json").read_text())
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await setup_pipeline(endpoints)
        url = next((line.split(" on ", 1)[1] for p in procs for line in p.lines
                    if "sink dashboard on " in line), "(the sink service did not start its dashboard)")
        print(f"\nHeadwater demo: trips flowing at {args.rate:g}/s into hub 'trips'.\n"
              f"  dashboard:          {url}\n"
              f"  connection string:  {local_connection(endpoints['ingestion'])};EntityPath=trips\n"
              f"  (the namespace's: it reaches every service; `headwater connection-string` prints it)\n"
              f"  stop:               Ctrl-C here, or `headwater down` from anywhere\n"
              f"{path_hint().replace('headwater up: ', '  ')}\n", flush=True)
        sender = asyncio.create_task(send_trips(endpoints["ingestion"], "trips", args.rate))

        async def supervise() -> None:
            while True:
                await asyncio.to_thread(supervisor.check)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(supervise())
        await stop.wait()
        sender.cancel()
        watcher.cancel()

    try:
        asyncio.run(main())
    finally:
        stop_stack(procs)
    return 0


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("demo", help="run the book's pipeline with the live dashboard (make up)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--file", default="compose.yaml")
    p.add_argument("--rate", type=float, default=200.0, help="trips per second (default 200)")
    p.add_argument("--ephemeral-ports", action="store_true", help="bind every port to a free one")
    p.set_defaults(func=_demo)
