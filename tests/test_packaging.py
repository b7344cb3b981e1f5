"""Packaging: the folders the design card names install as execgw.* (never a bare `server` or
`client`), every package is listed, and a wheel carries the SQL migrations and the contract."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_python_package_folder_is_listed():
    setuptools = pyproject()["tool"]["setuptools"]
    mapped = setuptools["package-dir"]
    listed = set(setuptools["packages"])
    found = set()
    for name, folder in mapped.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    missing = found - listed
    assert not missing, f"add to [tool.setuptools] packages: {sorted(missing)}"
    assert all(name.startswith("execgw.") for name in listed)


def test_a_wheel_carries_the_code_the_migrations_and_the_contract(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("execgw-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.startswith("execgw-")}
    assert top_level == {"execgw"}
    for expected in (
        "execgw/server/app.py",
        "execgw/server/db/sql/patches/20260123_trade_fills_and_orders.sql",
        "execgw/server/db/sql/base/20260101_base_schema.sql",
        "execgw/v1/execution_pb2_grpc.py",
        "execgw/v1/execution.proto",
        "execgw/client/client.py",
        "execgw/sim/simulator.py",
    ):
        assert expected in names, expected
