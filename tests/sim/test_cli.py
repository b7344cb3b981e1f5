"""``execgw sim`` as a process: starts with a scenario and accounts, serves a client, stops on SIGINT."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from .clients import RawClient

EXECGW = Path(sys.executable).parent / "execgw"


def test_execgw_sim_serves_until_sigint(tmp_path):
    scenario = tmp_path / "scenario.toml"
    scenario.write_text('first_order_id = 1000\n[symbols.GME]\noutcome = "reject"\n')
    process = subprocess.Popen(
        [str(EXECGW), "sim", "--port", "0", "--account", "DU111", "--account", "U222",
         "--scenario", str(scenario)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"execgw sim listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match, line + process.stderr.read() if not line else line
        client = RawClient(int(match.group(1))).start_api(1)
        assert client.receive() == ["15", "1", "DU111,U222"]
        assert client.receive() == ["9", "1", "1000"]
        client.close()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        log = process.stderr.read()
        assert "client 1 connected" in log and "TWS simulator stopped" in log
        assert "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_scenario_file_exits_with_status_2(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text('{"colour": "red"}')
    result = subprocess.run([str(EXECGW), "sim", "--port", "0", "--scenario", str(scenario)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "unknown key(s) colour" in result.stderr
