"""No silent stretch of more than 5 s on a terminal: commands run under a pseudo-terminal and the
time between two writes to it is measured (the bar, then the status line while files are
written, as `simulate` did silently for 19 s at a million customers)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "upliftlab")


def longest_silence(args: list[str]) -> tuple[float, bytes]:
    """Run the CLI with stderr on a pty (120 columns); the longest gap between writes."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "UPLIFTLAB_QUIET")}
    start = time.monotonic()
    proc = subprocess.Popen([CLI, *args], stdin=slave, stdout=subprocess.DEVNULL, stderr=slave,
                            env=env)
    os.close(slave)
    last, longest, seen = start, 0.0, b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the pty
                break
            if not chunk:
                break
            now = time.monotonic()
            longest, last, seen = max(longest, now - last), now, seen + chunk
        elif proc.poll() is not None:
            break
    proc.wait()
    os.close(master)
    assert proc.returncode == 0, seen[-500:]
    return max(longest, time.monotonic() - last), seen


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_simulate_is_never_silent_for_5_seconds(tmp_path):
    # 600,000 customers: writing the files alone takes longer than 5 s (silent before this change)
    gap, seen = longest_silence(["simulate", "--n-customers", "600000", "--out",
                                 str(tmp_path / "w")])
    assert b"block" in seen and b"writing the world" in seen  # the bar, then the status line
    assert gap < 5.0, f"silent for {gap:.1f} s"
