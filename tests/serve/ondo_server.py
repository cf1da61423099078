"""`ondo serve` as a child process, shared by the serve scripts.

Used by tests/serve/openai_client.py (the acceptance test CI runs) and bench/serve_load.py
(the load benchmark). `OndoServer(argv).start()` runs argv (an `ondo serve ...` command line)
with ONDO_API_KEY removed from its environment, and waits for the line
`ondo: listening on http://HOST:PORT` on its output; `url` is then that address. stdout and
stderr go into one pipe that a background thread drains for the whole life of the process
(so the pipe never fills and blocks the server), keeping the last lines for failure reports
(`tail_text()`). `alive()`, `stop()` (terminate, then kill) and `rss_kb(field)` (a field of
/proc/PID/status in KiB, Linux) complete it. As a context manager it starts on entry (and
stops again if the start fails) and stops on exit.
"""
import collections
import os
import queue
import re
import subprocess
import threading
import time

STARTUP_TIMEOUT_S = 120


class OndoServer:
    """`ondo serve` as a child process.

    The drain thread hands lines to `start()` until the "listening" line shows up. `log_prefix`
    goes before the "starting:" line `start()` prints; `announce_ready` prints "server ready
    at URL" once the server listens.
    """

    LISTEN_RE = re.compile(r"ondo: listening on (http://\S+)")

    def __init__(self, argv, log_prefix="", announce_ready=True):
        self.argv = list(argv)
        self.log_prefix = log_prefix
        self.announce_ready = announce_ready
        self.proc = None
        self.url = None  # http://HOST:PORT, as printed by the server
        self.tail = collections.deque(maxlen=200)
        self._lines = queue.Queue()
        self._reader = None

    def start(self, timeout=STARTUP_TIMEOUT_S):
        env = dict(os.environ)
        env.pop("ONDO_API_KEY", None)  # a key, if any, is given on the command line
        print(self.log_prefix + "starting:", " ".join(self.argv), flush=True)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no 'ondo: listening on' line within {timeout} s\n"
                                   + self.tail_text())
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(f"server exited with status {self.proc.returncode} "
                                       "before it was ready; its output:\n" + self.tail_text())
                continue
            if line is None:  # EOF: the process closed its output (it is exiting)
                self.proc.wait(timeout=10)
                raise RuntimeError(f"server exited with status {self.proc.returncode} "
                                   "before it was ready; its output:\n" + self.tail_text())
            m = self.LISTEN_RE.search(line)
            if m:
                self.url = m.group(1).rstrip("/")
                if self.announce_ready:
                    print("server ready at", self.url, flush=True)
                return self

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def _drain(self):
        announced = False
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            if not announced:
                self._lines.put(line)
                announced = bool(self.LISTEN_RE.search(line))
        self._lines.put(None)

    def tail_text(self, n=60):
        lines = list(self.tail)[-n:]
        return "\n".join("    | " + l for l in lines) if lines else "    | (no output)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self, field="VmRSS"):
        """A memory field of the server process in KiB, e.g. VmRSS or VmHWM (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field} in /proc/{self.proc.pid}/status")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
