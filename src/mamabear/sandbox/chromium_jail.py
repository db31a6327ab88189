"""What Playwright starts as its browser for a local session: Debian's Chromium, inside the session's jail.

Playwright runs this file's script as the browser's executable (``Browser`` in browser.py writes the script and a
spec beside it, in the session's control folder, which the jail never sees). It starts Chromium in the jail with the
session's network rule (slirp4netns, or none), its host ports relayed, its profile and downloads in the workspace, and Playwright's
pipe (descriptors 3 and 4) passed through; it ends when Chromium does, and Chromium with it (``--die-with-parent``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    from mamabear.sandbox import jail

    spec = json.loads(Path(os.environ["MAMABEAR_BROWSER_SPEC"]).read_text())
    layout = jail.Layout(*(Path(spec[k]) for k in ("work", "state", "tmp", "control")))
    support = jail.support()
    host_ports = tuple(spec["host_ports"])
    command = [spec["chromium"], *sys.argv[1:]]
    if host_ports:
        command = ["bash", "-c", jail.relay_line(host_ports) + '\nexec "$@"', "bash", *command]
    binds = tuple(Path(p) for p in spec["binds"])  # its profile and downloads, at the paths its driver names them by
    launched = jail.launch(layout, command, spec["mode"], support, spec["env"], host_ports, keep_fds=(3, 4), capture=False, binds=binds, ports="browser-ports")
    code = launched.proc.wait()
    launched.close()
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
