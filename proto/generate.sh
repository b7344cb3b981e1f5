#!/usr/bin/env bash
# Regenerates the committed Python code of the contract (execgw.v1) with the pinned grpcio-tools.
# CI runs this and fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python}
wkt=$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
"$python" -m grpc_tools.protoc -I . -I "$wkt" \
  --python_out=. --grpc_python_out=. --pyi_out=. \
  execgw/v1/execution.proto execgw/v1/admin.proto
