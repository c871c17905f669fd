"""The sample made with Node's ``ws`` library (both ends).

Run as root with ``ws`` installed OUTSIDE the repository, e.g.
``mkdir /tmp/nodews && cd /tmp/nodews && npm install ws@8``, then
``NODE_PATH=/tmp/nodews/node_modules python captures/make/node_peers.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAPTURES, HERE, Log, free_port, recording


def main() -> None:
    name = "node-ws"
    port = free_port()
    log = Log()
    env = dict(os.environ)
    env.setdefault("NODE_PATH", "/tmp/nodews/node_modules")
    with recording(CAPTURES / f"{name}.pcap", port):
        out = subprocess.run(["node", str(HERE / "node_ws.js"), str(port)], env=env,
                             capture_output=True, text=True, timeout=30, check=True).stdout
    for line in out.splitlines():
        entry = json.loads(line)
        log.messages.append({"conn": 1, **entry})
    log.connection(1, handshake=True, extensions="permessage-deflate")
    log.write(name, "Node ws 8 server and client, permessage-deflate (threshold 0), a "
              "fragmented binary message, an uncompressed message, ping with data, close 4321")


if __name__ == "__main__":
    main()
