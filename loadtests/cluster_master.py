"""Run a Locust master in a pod, then print its output folder to the log, so whoever started it gets the results
back with nothing but read access to pod logs (no volume to mount, no `kubectl cp` into a finished pod).

    python cluster_master.py --out /out -- -f locustfile.py --master --expect-workers 2 --headless ...

The folder (CSV, HTML, JSON, the locustfile's meta file, Locust's log) goes out as one gzipped tar, base64, between
two marker lines; :func:`unpack` (modelops/gate/cluster.py calls it) finds and extracts it. Locust writes its own
log to --logfile inside the folder, so the pod's log holds little else. Standard library only: it runs in the
Locust image, from a ConfigMap.
"""

from __future__ import annotations

import argparse
import base64
import io
import subprocess
import sys
import tarfile
from pathlib import Path

BEGIN = "----- modelops results (base64 tar.gz) begin -----"
END = "----- modelops results end -----"


class MissingResultsError(ValueError):
    pass


def pack(folder: Path) -> str:
    """The folder as base64 text of a gzipped tar, between the markers."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return "\n".join([BEGIN, *lines, END])


def unpack(log: str, dest: Path) -> list[str]:
    """Extract the results printed in ``log`` into ``dest``; returns the file names. Raises MissingResultsError when the
    log holds no complete results block (the master died first, or the log was cut)."""
    start, end = log.rfind(BEGIN), log.rfind(END)
    if start < 0 or end < start:
        raise MissingResultsError(
            "the master's log holds no results block: it ended before Locust finished, or the log was rotated "
            "(see the Job's pod log: kubectl logs job/<name>)"
        )
    payload = "".join(log[start + len(BEGIN) : end].split())
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(payload)), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")  # "data": no absolute paths, links or devices out of dest
        return tar.getnames()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder Locust writes its outputs to")
    parser.add_argument("locust_args", nargs=argparse.REMAINDER, help="-- then Locust's own arguments")
    options = parser.parse_args(argv)
    args = options.locust_args[1:] if options.locust_args[:1] == ["--"] else options.locust_args
    options.out.mkdir(parents=True, exist_ok=True)
    code = subprocess.call([sys.executable, "-m", "locust", *args])
    (options.out / "exit_code").write_text(str(code))
    print(pack(options.out), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
