"""Services started by a process die with it: a killed test run leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from tests.wait import wait_until


def test_a_service_dies_when_its_starter_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(os.getcwd())!r})
        from headwater.procs import ServiceProcess, headwater_cmd
        p = ServiceProcess("registry", [*headwater_cmd(), "serve", "registry", "--port", "0", "--metrics-port", "-1"],
                           env={{"HEADWATER_HOME": {str(tmp_path)!r}}}).start()
        print(p.pid, flush=True)
        time.sleep(60)  # the starter lives on until the test kills it (not a synchronisation)
    """)
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(starter.stdout.readline())
    os.kill(child, 0)  # running
    starter.send_signal(signal.SIGKILL)
    starter.wait(10)
    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return False

    if not wait_until(gone, timeout=10, every=0.05, fail=False):
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the service outlived the process that started it")
