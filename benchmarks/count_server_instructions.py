"""Instructions a ``flagscope serve`` process spends per ``POST /v1/traces`` (callgrind).

Wall-clock figures on a shared machine move by 30%; instruction counts do not. This
runs the server of a checkout (this one, or another's ``src``, e.g. a git worktree of
an earlier commit) under ``valgrind --tool=callgrind``, sends it a few requests to
warm up, zeroes the counters, sends ``N`` more of the same body over one keep-alive
connection, and dumps the counters: every thread of the process (the event loop, the
worker threads that decode and record) is counted, so the total over ``N`` is what
the server spends per request, from the HTTP bytes to the stored records::

    .venv/bin/python benchmarks/count_instructions.py write-body protobuf /tmp/body.pb
    for tree in . ../base; do
      .venv/bin/python benchmarks/count_server_instructions.py $tree /tmp/body.pb 40
    done

A body whose file name ends in ``.json`` (``write-body json /tmp/body.json``) is sent
as OTLP/JSON, any other as protobuf. It prints the instructions per request (and per
span, for ``bench_server``'s 200-span body); ``callgrind_annotate OUT.1`` shows where
they went.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tomllib
from pathlib import Path

_WARM_UP = 3
_SPANS = 200


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit("usage: TREE BODY N [OUT]")
    tree = Path(sys.argv[1]).resolve()
    body = Path(sys.argv[2]).read_bytes()
    content_type = "application/json" if sys.argv[2].endswith(".json") else "application/x-protobuf"
    count = int(sys.argv[3])
    out = sys.argv[4] if len(sys.argv) > 4 else "/tmp/flagscope-serve.callgrind"
    # That checkout's own console-script entry point, run from its src/ (as bench_server).
    scripts = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["flagscope"].partition(":")
    launcher = (
        f"import sys; sys.argv[0] = 'flagscope'; from {module} import {function}; "
        f"sys.exit({function}())"
    )
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONHASHSEED": "0"}
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-c",
        launcher,
        "serve",
        "--port",
        "0",
        "--max-size",
        "5000000",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].split()[0]
                break
        else:
            raise SystemExit("flagscope serve did not start")
        host, port = url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=600)

        def post() -> None:
            headers = {"content-type": content_type}
            connection.request("POST", "/v1/traces", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status

        for _ in range(_WARM_UP):
            post()
        subprocess.run(
            ["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True
        )
        for _ in range(count):
            post()
        subprocess.run(
            ["callgrind_control", "-d", "measured", str(process.pid)],
            check=True,
            capture_output=True,
        )
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=120)
    total = next(
        int(line.split()[1])
        for line in Path(f"{out}.1").read_text().splitlines()
        if line.startswith("summary:")
    )
    print(
        f"{tree}: {total // count:,} instructions per request, {total // count // _SPANS:,} "
        f"per span ({count} requests of {len(body)} bytes; profile in {out}.1)"
    )


if __name__ == "__main__":
    main()
