"""Helpers for torii's integration tests: ports, processes (backends, torii), raw HTTP/1.1
clients, a curl wrapper and config builders. Fixtures live in conftest.py.

Stdlib only; runs under Debian's /usr/bin/python3. Every process started here is stopped by
its PID (SIGTERM, bounded wait, SIGKILL), and every wait is bounded in time.
"""

import atexit
import errno
import http.client
import json
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from collections import namedtuple

from backend import CHUNK, pattern_chunks, pattern_sha256  # noqa: F401  (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
HOST = "127.0.0.1"


def torii_bin():
    return os.path.abspath(os.environ.get("TORII_BIN", os.path.join(build_dir(), "torii")))


def build_dir():
    """The build folder: ctest sets TORII_BUILD_DIR; by hand it is <repo>/build. Made absolute
    here (torii runs from its own working folder, so `TORII_BUILD_DIR=build-asan` did not
    find it)."""
    return os.path.abspath(os.environ.get(
        "TORII_BUILD_DIR", os.path.join(os.path.dirname(os.path.dirname(HERE)), "build")))


_sanitized = {}  # binary path -> built with ASan


def sanitizer_build():
    """True when the torii under test is built with AddressSanitizer (make test SANITIZE=1)."""
    path = torii_bin()
    if path not in _sanitized:
        try:
            with open(path, "rb") as f:
                _sanitized[path] = b"__asan_init" in f.read()
        except OSError:
            return False
    return _sanitized[path]


# The sanitizer build (make test SANITIZE=1) runs every torii process with leak detection on:
# LeakSanitizer checks the master when it returns from main and each worker and fleet process
# on its way out (core/process/child_exit.h). Third-party leaks that are not torii's to fix
# are named in t/sanitizers/lsan.supp. The release build ignores these variables. A caller's
# own settings win.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1",
    "LSAN_OPTIONS": "suppressions=%s:print_suppressions=0" % os.path.join(
        os.path.dirname(HERE), "sanitizers", "lsan.supp"),
    "UBSAN_OPTIONS": "print_stacktrace=1",
}
for _name, _value in SANITIZER_ENV.items():
    os.environ.setdefault(_name, _value)

# What the sanitizers print; any of these in a torii process's stderr fails the test (conftest).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

_sanitizer_findings = []  # reports seen since the last take_sanitizer_findings()


def sanitizer_report(text, where):
    """The first sanitizer report in `text` with some context, or None."""
    for marker in SANITIZER_MARKERS:
        at = text.find(marker)
        if at >= 0:
            return "%s:\n%s" % (where, text[max(0, at - 200):at + 3000])
    return None


def take_sanitizer_findings():
    """Sanitizer reports of every torii stopped (and every run_torii) since the last call."""
    out = list(_sanitizer_findings)
    del _sanitizer_findings[:]
    return out


def plugin_dir():
    """Where the bundled plugins (.so) were built."""
    return os.path.join(build_dir(), "plugins")


def test_plugin_dir():
    """Where the test-only plugins (t/plugins/*) were built."""
    return os.path.join(build_dir(), "test-plugins")


class HarnessError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Ports

_handed_out = set()


def free_port(lo=20000, hi=32000, attempts=200):
    """A loopback TCP port below the ephemeral range that nothing listens on right now."""
    for _ in range(attempts):
        port = random.randint(lo, hi)
        if port in _handed_out:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise HarnessError("no free port found in %d attempts" % attempts)


def port_accepts(port, timeout=0.2):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.02):
    """Polls pred() until it is truthy or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Processes

def _proc_stat(pid):
    """(ppid, starttime) of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[1]), int(rest[19])


def descendants(pid):
    """[(pid, starttime)] of every live descendant of pid (scans /proc)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _proc_stat(int(name))
        if st:
            children.setdefault(st[0], []).append((int(name), st[1]))
    out, todo = [], [pid]
    while todo and len(out) < 10000:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c[0])
    return out


def children(pid):
    """[(pid, starttime)] of the live direct children of pid (scans /proc; zombies left out)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st and st[0] == pid:
                out.append((int(name), st[1]))
    return sorted(out)


def zombie_children(pid):
    """PIDs of pid's children that exited and were not reaped (state Z)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        if rest[0] == "Z" and int(rest[1]) == pid:
            out.append(int(name))
    return sorted(out)


def proc_alive(pid, starttime=None):
    """pid runs (not a zombie) and, when given, has that start time (against PID reuse)."""
    st = _proc_stat(pid)
    return st is not None and (starttime is None or st[1] == starttime)


def proc_starttime(pid):
    """The start time (clock ticks since boot) of a live process, or None."""
    st = _proc_stat(pid)
    return st[1] if st else None


def open_fds(pid):
    """Number of open file descriptors of pid (/proc/PID/fd), or None."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stop_process(popen, grace=5.0):
    """SIGTERM the process we started, wait, SIGKILL if needed; then the same, by PID, for
    any of its descendants still alive (checked by start time against PID reuse)."""
    if popen is None:
        return
    tree = descendants(popen.pid) if popen.poll() is None else []
    if popen.poll() is None:
        try:
            popen.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            popen.kill()
            try:
                popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
    leftovers = lambda: [(p, s) for p, s in tree if (_proc_stat(p) or (0, None))[1] == s]
    # (the fleet process, which the master does not wait for, may still be on its way out)
    if tree and not wait_until(lambda: not leftovers(), min(grace, 10.0)):
        for p, _ in leftovers():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not leftovers(), 2.0)


_live = []  # started processes, stopped at exit should a fixture not run


@atexit.register
def _stop_everything():
    for obj in list(_live):
        try:
            obj.stop()
        except Exception:
            pass


class Backend:
    """backend.py (or another origin script taking the same flags, e.g. wsgi_backend.py) as a
    subprocess: Backend(name).start(); .port; .stop()."""

    def __init__(self, name="backend", mode="normal", workdir=None, port=None,
                 script="backend.py", extra_args=()):
        self.name = name
        self.mode = mode
        self.script = script
        self.extra_args = list(extra_args)
        self.port = port
        self.fixed_port = port is not None
        self.workdir = workdir or tempfile.mkdtemp(prefix="torii-backend-")
        self.proc = None

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    def start(self, timeout=10.0):
        for _ in range(5):
            if not self.fixed_port:
                self.port = free_port()
            out = os.path.join(self.workdir, "backend-%s-%d.out" % (self.name, self.port))
            err = os.path.join(self.workdir, "backend-%s-%d.err" % (self.name, self.port))
            with open(out, "wb") as fo, open(err, "wb") as fe:
                self.proc = subprocess.Popen(
                    [PYTHON, os.path.join(HERE, self.script), "--port", str(self.port),
                     "--name", self.name, "--mode", self.mode] + self.extra_args,
                    stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, cwd=HERE,
                    start_new_session=True)
            _live.append(self)

            def ready():
                if self.proc.poll() is not None:
                    return "exited"
                with open(out, "rb") as f:
                    return "ready" if b"ready" in f.read() else None

            state = wait_until(ready, timeout)
            if state == "ready":
                return self
            rc = self.proc.poll()
            self.stop()
            if state == "exited" and rc == 3 and not self.fixed_port:
                continue  # lost a race for the port: pick another
            with open(err, "rb") as f:
                raise HarnessError("backend %s did not start (%s): %s"
                                   % (self.name, state, f.read().decode(errors="replace")))
        raise HarnessError("backend %s: no port after 5 attempts" % self.name)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)
        if self in _live:
            _live.remove(self)

    def connections(self):
        """Total TCP connections this backend accepted, this query's own included."""
        r = request(self.port, "GET", "/__connections", timeout=5)
        return r.json()["accepted"]


class Torii:
    """torii with a config written to WORKDIR/torii.toml, run as `TORII_BIN -c PATH`."""

    def __init__(self, config_text, workdir=None, wait_ports=None, extra_args=(), rlimits=None):
        self.config_text = config_text
        # {resource.RLIMIT_X: (soft, hard)} set in the child before exec (fd exhaustion tests)
        self.rlimits = dict(rlimits or {})
        self.workdir = workdir or tempfile.mkdtemp(prefix="torii-")
        os.makedirs(self.workdir, exist_ok=True)
        self.config_path = os.path.join(self.workdir, "torii.toml")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        # Ready when every `listen` address of the config accepts (admin included).
        self.wait_ports = list(wait_ports) if wait_ports is not None else listen_ports(config_text)
        self.extra_args = list(extra_args)
        self.proc = None
        self.checked = False
        with open(self.config_path, "w") as f:
            f.write(config_text)

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=10.0, wait=True):
        binary = torii_bin()
        if not os.access(binary, os.X_OK):
            raise HarnessError("torii binary not found at %s: build it (make build) or set "
                               "TORII_BIN" % binary)
        limits = self.rlimits
        self.checked = False

        def set_limits():
            import resource
            for res, pair in limits.items():
                resource.setrlimit(res, pair)

        with open(self.stdout_path, "wb") as fo, open(self.stderr_path, "wb") as fe:
            self.proc = subprocess.Popen([binary, "-c", self.config_path] + self.extra_args,
                                         stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir, start_new_session=True,
                                         preexec_fn=set_limits if limits else None)
        _live.append(self)
        if not wait:
            return self

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            return all(port_accepts(p) for p in self.wait_ports)

        state = wait_until(ready, timeout, interval=0.05)
        if state is not True:
            rc = self.proc.poll()
            log = self.log()
            self.stop()
            raise HarnessError("torii did not start (%s, rc=%s); stderr:\n%s"
                               % ("exited" if rc is not None else "timeout", rc, log[-4000:]))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        # Under the sanitizers a process writing a leak report (symbolized: seconds) must not
        # be killed in the middle of it; one without a report stops as fast as ever.
        stop_process(self.proc, grace=30.0 if sanitizer_build() else 5.0)
        if self in _live:
            _live.remove(self)
        if self.proc is not None and not self.checked:
            self.checked = True  # once, after every process of it has exited
            found = sanitizer_report(self.log(), self.workdir)
            if found:
                _sanitizer_findings.append(found)

    def log(self):
        """What torii wrote to stderr (the configs use error_log = "stderr")."""
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def pids(self):
        """The master and every live descendant (workers)."""
        if not self.alive():
            return []
        return [self.proc.pid] + [p for p, _ in descendants(self.proc.pid)]

    def rss_kib(self):
        """{pid: VmRSS in KiB} for the master and its workers."""
        out = {}
        for p in self.pids():
            v = vm_rss_kib(p)
            if v is not None:
                out[p] = v
        return out


def run_torii(args, timeout=20.0, cwd=None):
    """One-shot command (-v, -t ...): CompletedProcess with text stdout/stderr."""
    binary = torii_bin()
    if not os.access(binary, os.X_OK):
        raise HarnessError("torii binary not found at %s: build it or set TORII_BIN" % binary)
    cp = subprocess.run([binary] + list(args), capture_output=True, text=True,
                        timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)
    found = sanitizer_report(cp.stderr, "torii " + " ".join(args))
    if found:
        _sanitizer_findings.append(found)
    return cp


# ---------------------------------------------------------------------------------------------
# HTTP messages

class Headers:
    """An ordered list of (name, value) with case-insensitive lookups."""

    def __init__(self, pairs=()):
        self.pairs = [(str(k), str(v)) for k, v in pairs]

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.pairs:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self.pairs if k.lower() == name]

    def __contains__(self, name):
        return self.get(name) is not None

    def names(self):
        return [k.lower() for k, _ in self.pairs]

    def __iter__(self):
        return iter(self.pairs)

    def __len__(self):
        return len(self.pairs)

    def __repr__(self):
        return "Headers(%r)" % self.pairs


class Response:
    def __init__(self, status=0, reason="", version="", headers=None, body=b"",
                 trailers=None, body_len=None, chunked=False):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.trailers = trailers if trailers is not None else Headers()
        self.body_len = len(body) if body_len is None else body_len
        self.chunked = chunked
        self.interim = []  # 1xx responses seen before this one

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode(errors="replace")

    def __repr__(self):
        return "<Response %s %s %r body=%d bytes>" % (self.version, self.status, self.headers,
                                                      self.body_len)


class ProtocolError(Exception):
    pass


class _Buffered:
    """Line and byte reads over a recv function returning b"" at EOF."""

    def __init__(self, recv):
        self.recv = recv
        self.buf = bytearray()
        self.eof = False

    def fill(self):
        if self.eof:
            return False
        data = self.recv()
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self, limit=1 << 20):
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            start = len(self.buf)
            if start > limit:
                raise ProtocolError("line over %d bytes" % limit)
            if not self.fill():
                raise ProtocolError("connection closed in the middle of a line (%r)"
                                    % bytes(self.buf[:200]))

    def read_exact(self, n, sink):
        while n > 0:
            if not self.buf and not self.fill():
                raise ProtocolError("connection closed with %d body bytes missing" % n)
            k = min(n, len(self.buf))
            sink(bytes(self.buf[:k]))
            del self.buf[:k]
            n -= k

    def read_to_eof(self, sink, limit=1 << 34):
        total = 0
        while total < limit:
            if self.buf:
                sink(bytes(self.buf))
                total += len(self.buf)
                self.buf.clear()
            if not self.fill():
                return


def _read_header_block(rd):
    pairs = []
    for _ in range(10000):
        line = rd.readline()
        if line in (b"\r\n", b"\n"):
            return Headers(pairs)
        text = line.decode("latin-1").rstrip("\r\n")
        if ":" not in text:
            raise ProtocolError("bad header line %r" % text)
        k, v = text.split(":", 1)
        pairs.append((k, v.strip(" \t")))
    raise ProtocolError("too many header lines")


def read_response(rd, head=False, interim=False, sink=None):
    """One response off a _Buffered. 1xx responses are collected in .interim and skipped
    unless interim=True (then the 1xx itself is returned). With `sink`, body bytes go to
    sink(bytes) instead of .body (body_len still counts them)."""
    seen = []
    for _ in range(20):
        line = rd.readline()
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?\r?\n$", line)
        if not m:
            raise ProtocolError("bad status line %r" % line[:200])
        version, status = m.group(1).decode(), int(m.group(2))
        reason = (m.group(3) or b"").decode("latin-1")
        headers = _read_header_block(rd)
        resp = Response(status, reason, version, headers)
        if 100 <= status < 200:
            if interim:
                resp.interim = seen
                return resp
            seen.append(resp)
            continue
        resp.interim = seen
        parts = []
        count = [0]

        def take(data):
            count[0] += len(data)
            if sink is not None:
                sink(data)
            else:
                parts.append(data)

        te = ",".join(headers.get_all("transfer-encoding")).lower()
        if head or status in (204, 304):
            pass
        elif te:
            if "chunked" not in te:
                rd.read_to_eof(take)
            else:
                resp.chunked = True
                for _ in range(1 << 24):
                    size_line = rd.readline(limit=4096).decode("latin-1").strip()
                    try:
                        size = int(size_line.split(";", 1)[0].strip(), 16)
                    except ValueError:
                        raise ProtocolError("bad chunk size line %r" % size_line)
                    if size == 0:
                        break
                    rd.read_exact(size, take)
                    if rd.readline(limit=16) not in (b"\r\n", b"\n"):
                        raise ProtocolError("no CRLF after chunk")
                resp.trailers = _read_header_block(rd)
        elif headers.get("content-length") is not None:
            cls = set(v.strip() for v in headers.get_all("content-length"))
            if len(cls) != 1 or not next(iter(cls)).isdigit():
                raise ProtocolError("bad Content-Length %r" % cls)
            rd.read_exact(int(next(iter(cls))), take)
        else:
            rd.read_to_eof(take)
        resp.body = b"".join(parts)
        resp.body_len = count[0]
        return resp
    raise ProtocolError("too many interim responses")


def parse_responses(data, head=False):
    """Every complete response in `data` (bytes read off a socket)."""
    chunks = [bytes(data)]
    rd = _Buffered(lambda: chunks.pop() if chunks else b"")
    out = []
    for _ in range(1000):
        if not rd.buf and not rd.fill():
            break
        out.append(read_response(rd, head=head))
    return out


def parse_response(data, head=False):
    rs = parse_responses(data, head=head)
    if not rs:
        raise ProtocolError("no response in %r" % bytes(data[:200]))
    return rs[0]


class RawConn:
    """A raw client socket: send exact bytes, read responses one by one (pipelining)."""

    def __init__(self, port, timeout=5.0, host=HOST):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.rd = _Buffered(self._recv)

    def _recv(self):
        try:
            return self.sock.recv(256 * 1024)
        except ConnectionResetError:
            return b""

    def settimeout(self, t):
        self.timeout = t
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def read_response(self, head=False, interim=False, sink=None, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            return read_response(self.rd, head=head, interim=interim, sink=sink)
        finally:
            if timeout is not None:
                self.sock.settimeout(self.timeout)

    def wait_closed(self, timeout):
        """Reads until the peer closes (EOF or RST) or `timeout` passes.
        Returns (closed, data, elapsed_seconds)."""
        start = time.monotonic()
        deadline = start + timeout
        data = bytearray(self.rd.buf)
        self.rd.buf.clear()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, bytes(data), time.monotonic() - start
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False, bytes(data), time.monotonic() - start
            except ConnectionResetError:
                return True, bytes(data), time.monotonic() - start
            if not chunk:
                return True, bytes(data), time.monotonic() - start
            data += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def cpu_seconds(pids):
    """utime + stime of the live processes among pids, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(rest[11]) + int(rest[12])  # fields 14 and 15: utime, stime
    return total / os.sysconf("SC_CLK_TCK")


class Clients:
    """n non-blocking connections driven by one selector: each connects, optionally waits
    for go(), sends one `Connection: close` request and reads the answer to EOF. Holds n
    sockets at once: raise RLIMIT_NOFILE first for large n."""

    def __init__(self, port, path, n, hold=False):
        self.sel = selectors.DefaultSelector()
        self.port = port
        self.request = ("GET %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
                        % path).encode()
        self.status = {}  # client index -> HTTP status, or an error string
        self.hold = hold
        self.held = []
        self.open = 0
        self.started = 0  # connects begun so far: the next client's index
        self.add(n)

    def add(self, n):
        """Begins n more connects. A test holding thousands of connections adds them in waves
        it lets the server accept: a burst beyond the listen backlog is answered with SYN
        cookies, whose clients count as connected while the server holds nothing of them
        until they send (the kernel drops their final ACK while the accept queue is full)."""
        for i in range(self.started, self.started + n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((HOST, self.port))
            if rc not in (0, errno.EINPROGRESS):
                self.status[i] = "connect: %s" % os.strerror(rc)
                s.close()
                continue
            self.open += 1
            self.sel.register(s, selectors.EVENT_WRITE, [i, bytearray()])
        self.started += n

    def _finish(self, s, i, value):
        self.sel.unregister(s)
        s.close()
        self.open -= 1
        self.status[i] = value

    def _send(self, s, state):
        try:
            s.sendall(self.request)  # small: fits the socket buffer at once
        except OSError as e:
            self._finish(s, state[0], "send: %s" % e)
            return
        self.sel.modify(s, selectors.EVENT_READ, state)

    def run(self, seconds, until=None):
        """Drives the connections for up to `seconds`, or until every one finished (or
        until() is true)."""
        deadline = time.monotonic() + seconds
        while self.open and time.monotonic() < deadline and not (until and until()):
            for key, ev in self.sel.select(timeout=0.1):
                s, state = key.fileobj, key.data
                i, buf = state
                if ev & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self._finish(s, i, "connect: %s" % os.strerror(err))
                    elif self.hold:
                        self.sel.modify(s, selectors.EVENT_READ, state)
                        self.held.append((s, state))
                    else:
                        self._send(s, state)
                    continue
                try:
                    data = s.recv(65536)
                except OSError as e:
                    data, err = None, e
                if data:
                    buf += data
                    continue
                if buf.startswith(b"HTTP/1.1 "):
                    self._finish(s, i, int(buf[9:12]))
                else:
                    self._finish(s, i, "closed after %d bytes: %r" % (
                        len(buf), bytes(buf[:60])) if data is not None else "recv: %s" % err)

    def connected(self, seconds):
        """Waits until every connect completed (in the kernel's queue or accepted)."""
        self.run(seconds)
        return len(self.held)

    def go(self):
        """Held connections send their request now."""
        self.hold = False
        for s, state in self.held:
            if state[0] not in self.status:
                self._send(s, state)
        self.held = []

    def ok(self):
        return sum(1 for v in self.status.values() if v == 200)

    def close(self):
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


class RawResult(bytes):
    """bytes read by raw_request; .closed tells whether the peer closed (vs timeout)."""
    closed = False
    elapsed = 0.0


def raw_request(port, data, timeout=5.0):
    """Sends `data` on a new connection, returns every byte read until close or timeout."""
    with RawConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, got, elapsed = c.wait_closed(timeout)
    r = RawResult(got)
    r.closed = closed
    r.elapsed = elapsed
    return r


def upstream_doc(admin_port, name="api", token=None):
    """GET /upstreams on the admin port: the document of upstream `name`."""
    headers = {"Authorization": "Bearer " + token} if token else {}
    r = request(admin_port, "GET", "/upstreams", headers=headers)
    assert r.status == 200, r.body
    return json.loads(r.body)["upstreams"][name]


def serving_targets(admin_port, name="api"):
    """{address: target} of the targets of `name` that take new requests (health "up")."""
    return {x["address"]: x for x in upstream_doc(admin_port, name)["targets"]
            if x["health"] == "up"}


def spread(port, n=24):
    """Counter of the backend names answering n requests, each on a fresh connection (so
    every worker serves some); a non-200 answer counts under its status."""
    import collections
    names = collections.Counter()
    for i in range(n):
        r = request(port, "GET", "/spread?i=%d" % i)
        names[json.loads(r.body)["backend"] if r.status == 200 else r.status] += 1
    return names


def request(port, method="GET", path="/", body=None, headers=None, timeout=10.0):
    """One request on a fresh http.client connection; returns a Response."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, "HTTP/%.1f" % (r.version / 10.0),
                        Headers(r.getheaders()), data)
    finally:
        conn.close()


class CurlResult(namedtuple("CurlResult", "status headers body")):
    """(status, headers, body) from the final response; also .rc and .stderr."""
    rc = 0
    stderr = ""


def curl(*args, timeout=30.0, check=True):
    """curl -sS with the final response's head and body captured separately."""
    with tempfile.TemporaryDirectory(prefix="torii-curl-") as d:
        hfile, bfile = os.path.join(d, "head"), os.path.join(d, "body")
        cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout),
               "-D", hfile, "-o", bfile] + [str(a) for a in args]
        cp = subprocess.run(cmd, capture_output=True, timeout=timeout + 10,
                            stdin=subprocess.DEVNULL)
        if cp.returncode != 0 and check:
            raise HarnessError("curl failed (%d): %s\n%s" % (cp.returncode, " ".join(cmd),
                                                            cp.stderr.decode(errors="replace")))
        head = open(hfile, "rb").read() if os.path.exists(hfile) else b""
        body = open(bfile, "rb").read() if os.path.exists(bfile) else b""
    status, pairs = 0, []
    for block in head.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = block.decode("latin-1").strip("\n").split("\n")
        if not lines or not lines[0].startswith("HTTP/"):
            continue
        status = int(lines[0].split()[1])
        pairs = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
    res = CurlResult(status, Headers(pairs), body)
    res.rc = cp.returncode
    res.stderr = cp.stderr.decode(errors="replace")
    return res


# ---------------------------------------------------------------------------------------------
# Config text (SPEC section 2)

def listen_ports(config_text):
    """Ports of every `listen` in a config: torii is ready when all accept."""
    ports = []
    for line in config_text.splitlines():
        if re.match(r"^\s*listen\s*=", line):
            ports += [int(p) for p in re.findall(r":(\d+)\"", line)]
    return ports


def toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (toml_key(k), toml_value(x))
                                for k, x in v.items()) + " }"
    raise TypeError("no TOML for %r" % (v,))


def _table(header, items):
    lines = [header] + ["%s = %s" % (toml_key(k), toml_value(v)) for k, v in items.items()]
    return "\n".join(lines) + "\n"


def main_block(admin_port=None, **opts):
    items = {"workers": 1, "error_log": "stderr", "access_log": "off",
             "plugin_dir": plugin_dir()}
    items.update(opts)
    text = _table("[main]", items)
    if admin_port:
        text += "\n" + _table("[admin]", {"listen": "%s:%d" % (HOST, admin_port)})
    return text


def _target(t):
    if isinstance(t, dict):
        return t
    if isinstance(t, tuple):  # (port or "host:port", weight)
        return dict(_target(t[0]), weight=t[1])
    return {"address": t if isinstance(t, str) else "%s:%d" % (HOST, t)}


def upstream_block(name, targets, **opts):
    """targets: ports (loopback) or "host:port" strings; (target, weight) pairs for a
    weight; or whole target dicts."""
    items = {"targets": [_target(t) for t in targets]}
    items.update(opts)
    return _table("[upstream.%s]" % toml_key(name), items)


def _plugin_tables(prefix, plugins):
    """{name: {key: value}} as `[PREFIX.plugins.NAME]` tables (the form users write)."""
    return "".join("\n" + _table("[%s.plugins.%s]" % (prefix, toml_key(name)), items)
                   for name, items in plugins.items())


def server_block(ports, locations, **opts):
    """locations: dicts of location keys, e.g. {"path": "/api/", "upstream": "api"}.
    A "plugins" dict ({name: {key: value}}) in opts or in a location is written as
    [server.plugins.NAME] / [server.location.plugins.NAME] tables."""
    items = {"listen": ["%s:%d" % (HOST, p) for p in ports]}
    opts = dict(opts)
    server_plugins = opts.pop("plugins", None) or {}
    items.update(opts)
    text = _table("[[server]]", items) + _plugin_tables("server", server_plugins)
    for loc in locations:
        loc = dict(loc)
        loc_plugins = loc.pop("plugins", None) or {}
        text += "\n" + _table("[[server.location]]", loc)
        text += _plugin_tables("server.location", loc_plugins)
    return text


def plugin_block(name, path=None, **opts):
    """One [[plugin]] entry: loads <plugin_dir>/NAME.so, or `path` when given."""
    items = {"name": name}
    if path is not None:
        items["path"] = path
    items.update(opts)
    return _table("[[plugin]]", items)


def config(*blocks):
    return "\n".join(blocks)
