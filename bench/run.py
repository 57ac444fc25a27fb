#!/usr/bin/python3
"""Benchmark gowsgi against nginx+uWSGI, nginx+gunicorn, uWSGI, gunicorn and waitress.

Each server runs one Python process with one request thread (see README.md
for the exact command lines), on a free 127.0.0.1 port; nginx stacks put
nginx (one worker) in front of uWSGI or gunicorn over a unix socket; TLS
stacks share one self-signed certificate. Each is measured with
`wrk -t1 -c16 -d<duration> --latency` over keep-alive connections. For each
server and scenario it reports requests/s, p50/p99 latency, the CPU time of
every process of the stack per request, and their resident memory. The TLS
stacks are then loaded with h2load over HTTP/1.1 and HTTP/2 (-m1, -m10). It
also measures gowsgi's own resident memory with 10 idle apps mounted and the
time of a no-op reload (SIGHUP with an unchanged config).

Standard library only; installs nothing. Needs the Debian packages wrk,
nghttp2-client, nginx, openssl, gunicorn, uwsgi, uwsgi-plugin-python3,
python3-waitress and python3-flask (only those the selected servers need),
and Go, unless --gowsgi is given.

Usage:
  /usr/bin/python3 bench/run.py [--duration 10] [--rounds 3] [--scenarios hello,flask,big,post]
                                [--servers gowsgi,gowsgi-tls,nginx-uwsgi,...] [--no-h2 | --h2-only]
                                [--h2-requests 100000] [--table full|issue|both]
                                [--python /usr/bin/python3] [--gowsgi PATH] [--json [FILE]]
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
APPS = os.path.join(BENCH, "apps")
POST_LUA = os.path.join(BENCH, "post1m.lua")

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

CONNECTIONS = 16
WARMUP_SECONDS = 1
READY_TIMEOUT = 30.0  # seconds a server gets to answer its first request
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
POST_SIZE = 1024 * 1024
IDLE_APPS = 10
RELOADS = 5


class Scenario:
    def __init__(self, name, title, module, expect, post=False, needs=None):
        self.name = name
        self.title = title
        self.module = module  # "file:callable" under bench/apps
        self.expect = expect  # the exact response body
        self.post = post  # POST a 1 MiB body (wrk script post1m.lua)
        self.needs = needs  # (python module, Debian package) the app imports


SCENARIOS = [
    Scenario("hello", "hello (plain WSGI)", "hello:application", b"Hello, World!"),
    Scenario("flask", "hello (Flask)", "flask_hello:application", b"Hello, World!",
             needs=("flask", "python3-flask")),
    Scenario("big", "64 KiB response", "big:application", b"x" * 65536),
    Scenario("post", "1 MiB POST, length echoed", "post_len:application",
             str(POST_SIZE).encode(), post=True),
]
SERVERS = ["gowsgi", "gowsgi-tls", "nginx-uwsgi", "nginx-uwsgi-tls", "nginx-gunicorn", "uwsgi-http",
           "gunicorn", "uwsgi", "waitress"]
DEFAULT_SERVERS = SERVERS[:7]  # not waitress, nor uwsgi with --http11-socket
NGINX = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


class BenchError(Exception):
    """A failure of one server or measurement: reported, and the run goes on."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP to this script: stop like Ctrl-C."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

# Every process this script starts, so that they are all killed on the way out.
_children = []


def _stat(pid):
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def _start_time(pid):
    try:
        return int(_stat(pid)[19])
    except (OSError, IndexError):
        return None


def process_tree(root):
    """The root pid and all its live descendants (by parent pid, whatever their group)."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat(name)[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def tree_usage(roots):
    """(CPU seconds, RSS bytes, process count) of the trees of the root pids.

    CPU is utime+stime of every live process plus cutime+cstime (children it
    has reaped), so work done by processes that exited is still counted. A
    stack of two servers (nginx in front of uWSGI) passes both roots.
    """
    if isinstance(roots, int):
        roots = [roots]
    pids = set()
    for root in roots:
        pids.update(process_tree(root))
    ticks = rss = n = 0
    for pid in pids:
        try:
            f = _stat(pid)
        except OSError:
            continue
        ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        rss += int(f[21]) * PAGE_SIZE
        n += 1
    return ticks / CLK_TCK, rss, n


def process_rss(pid):
    """Resident memory of one process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def spawn(cmd, **kw):
    """Start cmd in a new session (its own process group) and remember it."""
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    _children.append(p)
    return p


def kill_tree(p, grace=STOP_GRACE):
    """SIGTERM p's process group, wait up to grace, then SIGKILL whatever of its tree is left."""
    tree = [(pid, _start_time(pid)) for pid in process_tree(p.pid)] if p.poll() is None else []

    def signal_group_and_wait(sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    signal_group_and_wait(signal.SIGTERM)
    for pid, started in tree:
        # Same start time: the same process, not a reused pid.
        if started is not None and _start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    signal_group_and_wait(signal.SIGKILL)
    if p in _children:
        _children.remove(p)


def kill_all():
    for p in list(_children):
        kill_tree(p, grace=2.0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).rstrip()
    except OSError:
        return ""


# ------------------------------------------------------------------ servers

class Env:
    """What every server start needs: paths, interpreter, tool facts."""

    def __init__(self, args, tmp):
        self.python = args.python
        self.gowsgi = args.gowsgi
        self.tmp = tmp
        self.uwsgi_socket_opt = None
        self.waitress_threads = args.waitress_threads
        self.proc_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        self.nginx = NGINX
        self.nginx_version = None  # (major, minor, patch)
        self.nginx_conf_dir = "/etc/nginx"  # where the package's uwsgi_params is
        self.cert = self.key = None  # one self-signed certificate for every TLS server
        self.post_file = None  # the 1 MiB body h2load posts
        self.seq = 0  # numbers the stacks' files
        self.uwsgi_listen = args.uwsgi_listen  # --listen of uWSGI behind nginx; None: its default (100)


def make_certificate():
    """One self-signed certificate (RSA 2048) in the tmp dir, for gowsgi and nginx alike."""
    cert, key = os.path.join(ENV.tmp, "cert.pem"), os.path.join(ENV.tmp, "key.pem")
    rc, text = run_quiet(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                          "-subj", "/CN=localhost", "-days", "2", "-keyout", key, "-out", cert])
    if rc != 0:
        raise BenchError(f"openssl req failed:\n{text}")
    ENV.cert, ENV.key = cert, key


def write_gowsgi_config(path, port, apps, tls=False):
    """apps: list of (name, module, mount prefix)."""
    if tls:
        listener = (f'{{addr: "127.0.0.1:{port}", tls: {{cert: {json.dumps(ENV.cert)}, '
                    f'key: {json.dumps(ENV.key)}}}}}')
    else:
        listener = f'"127.0.0.1:{port}"'
    lines = [f"listeners: [{listener}]", "shutdown_timeout: 5s", "apps:"]
    for name, module, _ in apps:
        lines.append(f"  {name}: {{module: {json.dumps(module)}, dir: {json.dumps(APPS)}, "
                     f"python: {json.dumps(ENV.python)}, workers: 1, threads: 1}}")
    lines.append("mounts:")
    for name, _, prefix in apps:
        lines.append(f"  {json.dumps(prefix)}: {name}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


H2_KEEPALIVE_REQUESTS = 1000000


def nginx_config(d, port, tls, upstream, sock, h2load=False):
    """nginx.conf for a stack: nginx's defaults except what running it from a
    tmp dir needs (see README.md, "nginx"). upstream: "uwsgi" or "http".
    h2load: for the h2load section, which needs keep-alive connections that
    last the whole run (h2load does not reconnect after nginx's GOAWAY)."""
    listen = f"listen 127.0.0.1:{port}"
    h2_on = False
    if tls:
        listen += " ssl"
        if ENV.nginx_version >= (1, 25, 1):
            h2_on = True  # `listen ... http2` is deprecated from 1.25.1
        else:
            listen += " http2"
    c = ["daemon off;",
         "master_process on;",
         "worker_processes 1;",
         f"pid {d}/nginx.pid;",
         f"error_log {d}/error.log;"]
    if os.geteuid() == 0:
        # As root, workers would run as nobody, which can enter neither the
        # tmp dir (0700) nor connect to the app server's socket.
        import grp
        import pwd
        c.append(f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};")
    c += ["events {",
          "}",
          "http {",
          "    access_log off;"]
    if h2load:
        c.append(f"    keepalive_requests {H2_KEEPALIVE_REQUESTS};")
    for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        c.append(f"    {t}_temp_path {d}/{t}_temp;")
    c += ["    server {",
          f"        {listen};"]
    if h2_on:
        c.append("        http2 on;")
    if tls:
        c += [f"        ssl_certificate {ENV.cert};",
              f"        ssl_certificate_key {ENV.key};"]
    c.append("        location / {")
    if upstream == "uwsgi":
        c += [f"            include {ENV.nginx_conf_dir}/uwsgi_params;",
              f"            uwsgi_pass unix:{sock};"]
    else:
        c.append(f"            proxy_pass http://unix:{sock};")
    c += ["        }",
          "    }",
          "}"]
    return "\n".join(c) + "\n"


def uwsgi_backend_command(scenario, sock):
    cmd = ["uwsgi", "--socket", sock, "--plugin", "python3", "--master", "--die-on-term",
           "--processes", "1", "--threads", "1", "--need-app", "--disable-logging",
           "--chdir", APPS, "--module", scenario.module]
    if ENV.uwsgi_listen:
        cmd += ["--listen", str(ENV.uwsgi_listen)]
    return cmd


def gunicorn_command(scenario, bind):
    return [ENV.python, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
            "--bind", bind, "--chdir", APPS, "--log-level", "warning", scenario.module]


class Stack:
    """One server, or nginx in front of one: its processes, port and logs."""

    def __init__(self, server, label):
        ENV.seq += 1
        self.server = server
        self.name = f"{server}-{label}-{ENV.seq}"
        self.port = free_port()
        self.tls = server.endswith("-tls")
        self.procs = []  # (name, Popen, logfile), in start order
        self.nginx_conf = None  # the generated nginx.conf, for --json
        self.commands = []
        self.logs = []

    @property
    def base(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, name, cmd):
        logfile = os.path.join(ENV.tmp, f"{self.name}-{name}.log")
        with open(logfile, "w") as lf:
            p = spawn(cmd, cwd=APPS, stdout=lf, stderr=subprocess.STDOUT, env=ENV.proc_env)
        self.procs.append((name, p, logfile))
        self.commands.append(cmd)
        self.logs.append(logfile)
        return p

    def roots(self):
        return [p.pid for _, p, _ in self.procs]

    def check_alive(self, when):
        for name, p, logfile in self.procs:
            if p.poll() is not None:
                raise BenchError(f"{name} exited with status {p.returncode} {when} "
                                 f"(log {logfile})\n{tail(logfile)}")

    def log_tail(self):
        return "\n".join(f"{f}:\n{tail(f)}" for f in self.logs if tail(f))

    def stop(self):
        # The front first, so that it does not see its upstream vanish while serving.
        for _, p, _ in reversed(self.procs):
            kill_tree(p)


def wait_socket(stack, sock):
    """Poll until a unix socket accepts connections (the app server behind nginx is up)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        stack.check_alive("before its socket was up")
        if os.path.exists(sock):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(sock)
                    return
                except OSError:
                    pass
        if time.monotonic() > deadline:
            raise BenchError(f"{sock} did not accept connections within {READY_TIMEOUT:.0f}s\n"
                             f"{stack.log_tail()}")
        time.sleep(0.05)


def start_stack(server, scenario, h2load=False):
    """Start server (and its nginx) serving scenario's app; return the Stack once it answers 200."""
    st = Stack(server, scenario.name)
    addr = f"127.0.0.1:{st.port}"
    try:
        if server in ("gowsgi", "gowsgi-tls"):
            cfg = os.path.join(ENV.tmp, f"{st.name}.yaml")
            write_gowsgi_config(cfg, st.port, [(scenario.name, scenario.module, "/")], tls=st.tls)
            st.start("gowsgi", [ENV.gowsgi, "-c", cfg, "-log-level", "warn", "-log-format", "json"])
        elif server == "gunicorn":
            st.start("gunicorn", gunicorn_command(scenario, addr))
        elif server in ("uwsgi", "uwsgi-http"):
            opt = ENV.uwsgi_socket_opt if server == "uwsgi" else "--http-socket"
            st.start("uwsgi", ["uwsgi", "--plugin", "python3", opt, addr,
                               "--master", "--die-on-term", "--processes", "1", "--threads", "1",
                               "--chdir", APPS, "--module", scenario.module, "--need-app",
                               "--disable-logging"])
        elif server == "waitress":
            st.start("waitress", [ENV.python, "-m", "waitress", f"--listen={addr}",
                                  f"--threads={ENV.waitress_threads}", scenario.module])
        elif server in ("nginx-uwsgi", "nginx-uwsgi-tls", "nginx-gunicorn"):
            d = os.path.join(ENV.tmp, f"{st.name}-nginx")
            os.mkdir(d)
            sock = os.path.join(ENV.tmp, f"{st.name}.sock")
            if server == "nginx-gunicorn":
                st.start("gunicorn", gunicorn_command(scenario, "unix:" + sock))
                upstream = "http"
            else:
                st.start("uwsgi", uwsgi_backend_command(scenario, sock))
                upstream = "uwsgi"
            wait_socket(st, sock)
            conf = os.path.join(d, "nginx.conf")
            st.nginx_conf = nginx_config(d, st.port, st.tls, upstream, sock, h2load=h2load)
            with open(conf, "w") as f:
                f.write(st.nginx_conf)
            st.logs.append(os.path.join(d, "error.log"))
            st.start("nginx", [ENV.nginx, "-p", d + "/", "-c", conf, "-e", os.path.join(d, "error.log")])
        else:
            raise ValueError(server)
        wait_ready(st, "/", server)
        return st
    except BaseException:
        st.stop()
        raise


def _ssl_context():
    import ssl
    return ssl._create_unverified_context()


def request(stack, scenario, timeout=5.0):
    """One request of the scenario: (status, body)."""
    data = b"a" * POST_SIZE if scenario.post else None
    req = urllib.request.Request(stack.base + "/", data=data,
                                 method="POST" if scenario.post else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/octet-stream")
    ctx = _ssl_context() if stack.tls else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(stack, path, name):
    """Poll until the stack answers 200 on path, one of its processes exits, or READY_TIMEOUT passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    ctx = _ssl_context() if stack.tls else None
    while True:
        stack.check_alive("before answering")
        try:
            with urllib.request.urlopen(stack.base + path, timeout=2, context=ctx) as r:
                r.read()
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, urllib.error.URLError) as e:
            last = str(getattr(e, "reason", e))
        if time.monotonic() > deadline:
            raise BenchError(f"{name} did not answer 200 on {path} within {READY_TIMEOUT:.0f}s "
                             f"(last: {last})\n{stack.log_tail()}")
        time.sleep(0.05)


# ---------------------------------------------------------------------- wrk

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * _UNITS_MS[m.group(2)] if m else None


def parse_wrk(out):
    res = {"requests": 0, "rps": 0.0, "avg_ms": None, "p50_ms": None, "p99_ms": None, "non2xx": 0,
           "socket_errors": {}, "bad_bodies": 0}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+)", out, re.M)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"^\s+Latency\s+(\S+)", out, re.M)
    if m:
        res["avg_ms"] = _ms(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        if m:
            res[f"p{pct}_ms"] = _ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: (.*)", out)
    if m:
        res["socket_errors"] = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", m.group(1))}
    m = re.search(r"^bad_bodies: (\d+)", out, re.M)
    if m:
        res["bad_bodies"] = int(m.group(1))
    return res


def run_client(cmd, timeout, what):
    """Run a load generator to the end; its output."""
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what} did not finish within {timeout}s")
    finally:
        if p.poll() is None:
            kill_tree(p, grace=1.0)
        elif p in _children:
            _children.remove(p)
    if p.returncode != 0:
        raise BenchError(f"{what} exited with {p.returncode}:\n{out.strip()}")
    return out


def run_wrk(stack, scenario, seconds):
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if scenario.post:
        cmd += ["-s", POST_LUA]
    cmd.append(stack.base + "/")
    return run_client(cmd, seconds + 30, "wrk")


def error_summary(res):
    """A short text of what went wrong in a measurement, or "" if nothing did."""
    parts = []
    if res.get("check"):
        parts.append(res["check"])
    if res.get("non2xx"):
        parts.append(f"{res['non2xx']} non-2xx")
    for k, v in (res.get("socket_errors") or {}).items():
        if v:
            parts.append(f"{v} socket {k} errors")
    if res.get("bad_bodies"):
        parts.append(f"{res['bad_bodies']} wrong bodies")
    for k in ("failed", "errored", "timeout"):  # h2load
        if res.get(f"h2_{k}"):
            parts.append(f"{res[f'h2_{k}']} {k}")
    if res.get("protocol_mismatch"):
        parts.append(res["protocol_mismatch"])
    if res.get("requests") == 0:
        parts.append("no request completed")
    busy = res.get("busy_connections")
    if busy is not None and busy < CONNECTIONS / 2:
        parts.append(f"only ~{busy:.0f} of {CONNECTIONS} connections served (rps × mean latency): "
                     "the others starved")
    return "; ".join(parts)


def check_request(stack, scenario):
    status, body = request(stack, scenario, timeout=10)
    if status != 200 or body != scenario.expect:
        return f"check request: HTTP {status}, body {body[:40]!r}"
    return ""


def measure(server, scenario, duration):
    st = start_stack(server, scenario)
    try:
        check = check_request(st, scenario)
        run_wrk(st, scenario, WARMUP_SECONDS)
        cpu0, _, _ = tree_usage(st.roots())
        out = run_wrk(st, scenario, duration)
        cpu1, rss, nproc = tree_usage(st.roots())
        st.check_alive("during the run")
        res = parse_wrk(out)
        res.update(
            server=server, scenario=scenario.name, check=check,
            command=st.commands[-1], commands=st.commands, nginx_conf=st.nginx_conf,
            cpu_seconds=round(cpu1 - cpu0, 3),
            cpu_us_per_req=round((cpu1 - cpu0) * 1e6 / res["requests"], 1) if res["requests"] else None,
            rss_mib=round(rss / 2**20, 1), processes=nproc, wrk_output=out)
        # Little's law: requests in flight = throughput × mean latency. wrk keeps
        # one request outstanding on each connection, so this is ~16 when every
        # connection is served, and ~1 when a server serves one keep-alive
        # connection at a time while the others wait (their requests never
        # complete, so they are missing from wrk's latency figures).
        if res["rps"] and res["avg_ms"] is not None:
            res["busy_connections"] = round(res["rps"] * res["avg_ms"] / 1000, 2)
        res["errors"] = error_summary(res)
        return res
    finally:
        st.stop()


# ------------------------------------------------------------------- h2load

# name -> (h2load flags, ALPN protocol h2load must report)
H2_CLIENTS = {
    "h1": (["--h1"], "http/1.1"),
    "h2-m1": (["-m1"], "h2"),
    "h2-m10": (["-m10"], "h2"),
}
H2_CLIENT_TITLES = {"h1": "HTTP/1.1 (`--h1`)", "h2-m1": "HTTP/2 `-m1`", "h2-m10": "HTTP/2 `-m10`"}
H2_SERVERS = ["gowsgi-tls", "nginx-uwsgi-tls"]
H2_SCENARIOS = ["hello", "flask", "big"]


def parse_h2load(out):
    res = {"requests": 0, "rps": 0.0, "h2_total": 0, "h2_started": 0, "h2_succeeded": 0,
           "h2_failed": 0, "h2_errored": 0, "h2_timeout": 0, "status": {},
           "non2xx": 0, "mean_ms": None, "max_ms": None, "min_ms": None, "sd_ms": None,
           "protocol": None}
    m = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", out, re.M)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out, re.M)
    if m:
        (res["h2_total"], res["h2_started"], res["requests"], res["h2_succeeded"],
         res["h2_failed"], res["h2_errored"], res["h2_timeout"]) = map(int, m.groups())
    m = re.search(r"^status codes: (.*)", out, re.M)
    if m:
        res["status"] = {k: int(v) for v, k in re.findall(r"(\d+) (\dxx)", m.group(1))}
        res["non2xx"] = sum(v for k, v in res["status"].items() if k != "2xx")
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        res["min_ms"], res["max_ms"], res["mean_ms"], res["sd_ms"] = (_ms(x) for x in m.groups())
    m = re.search(r"^Application protocol: (\S+)", out, re.M)
    if m:
        res["protocol"] = m.group(1)
    return res


def h2load_command(stack, scenario, client, n):
    cmd = ["h2load", "-t1", f"-c{CONNECTIONS}", f"-n{n}"] + H2_CLIENTS[client][0]
    if scenario.post:
        cmd += ["-d", ENV.post_file, "-H", "Content-Type: application/octet-stream"]
    return cmd + [stack.base + "/"]


def measure_h2(server, scenario, requests, warmup):
    """One stack, the three h2load clients in turn: a result per client."""
    st = start_stack(server, scenario, h2load=True)
    results = []
    try:
        check = check_request(st, scenario)
        for client, (_, proto) in H2_CLIENTS.items():
            try:
                if warmup:
                    run_client(h2load_command(st, scenario, client, warmup), 600, "h2load (warm-up)")
                cpu0, _, _ = tree_usage(st.roots())
                cmd = h2load_command(st, scenario, client, requests)
                out = run_client(cmd, 900, "h2load")
                cpu1, rss, nproc = tree_usage(st.roots())
                st.check_alive("during the run")
            except BenchError as e:
                if any(p.poll() is not None for _, p, _ in st.procs):
                    raise
                results.append({"server": server, "scenario": scenario.name, "client": client,
                                 "failed": str(e).splitlines()[0], "detail": str(e)})
                continue
            res = parse_h2load(out)
            res.update(
                server=server, scenario=scenario.name, client=client, check=check,
                command=st.commands[-1], commands=st.commands, nginx_conf=st.nginx_conf, h2load_command=cmd,
                cpu_seconds=round(cpu1 - cpu0, 3),
                cpu_us_per_req=round((cpu1 - cpu0) * 1e6 / res["requests"], 1) if res["requests"] else None,
                rss_mib=round(rss / 2**20, 1), processes=nproc, h2load_output=out)
            if res["protocol"] != proto:
                res["protocol_mismatch"] = f"protocol {res['protocol']}, not {proto}"
            res["errors"] = error_summary(res)
            results.append(res)
        return results
    finally:
        st.stop()


# ------------------------------------------------- gowsgi memory and reload

def gowsgi_idle_and_reload():
    """RSS of the gowsgi process with IDLE_APPS idle apps, and no-op reload times."""
    port = free_port()
    cfg = os.path.join(ENV.tmp, "gowsgi-idle.yaml")
    apps = [(f"app{i}", "hello:application", f"/app{i}") for i in range(IDLE_APPS)]
    write_gowsgi_config(cfg, port, apps)
    logfile = os.path.join(ENV.tmp, "gowsgi-idle.log")
    p = spawn([ENV.gowsgi, "-c", cfg, "-log-level", "info", "-log-format", "json"],
              cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV.proc_env)
    lines = queue.Queue()

    def reader():
        with open(logfile, "w") as lf:
            for raw in p.stderr:
                text = raw.decode(errors="replace")
                lf.write(text)
                lf.flush()
                try:
                    lines.put(json.loads(text))
                except ValueError:
                    pass

    threading.Thread(target=reader, daemon=True).start()
    st = Stack("gowsgi", "idle")
    st.port = port
    st.procs.append(("gowsgi", p, logfile))
    st.logs.append(logfile)
    try:
        for _, _, prefix in apps:
            wait_ready(st, prefix + "/", "gowsgi")
        host_rss = process_rss(p.pid)
        _, tree_rss, nproc = tree_usage(p.pid)
        took = []
        for _ in range(RELOADS):
            while not lines.empty():  # forget the lines logged so far
                lines.get_nowait()
            os.kill(p.pid, signal.SIGHUP)
            deadline = time.monotonic() + 30
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or p.poll() is not None:
                    raise BenchError(f"no 'config applied' line within 30s of SIGHUP "
                                     f"(log {logfile})\n{tail(logfile)}")
                try:
                    rec = lines.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if rec.get("message") == "config applied":
                    if rec.get("apps_started") or rec.get("apps_stopped") or rec.get("apps_replaced"):
                        raise BenchError(f"the no-op reload changed apps: {rec}")
                    took.append(float(rec["took"]))
                    break
                if rec.get("level") == "error":
                    raise BenchError(f"reload failed: {rec}")
        return {
            "apps": IDLE_APPS,
            "host_rss_mib": round(host_rss / 2**20, 1),
            "tree_rss_mib": round(tree_rss / 2**20, 1),
            "tree_processes": nproc,
            "reload_took_ms": took,
            "reload_median_ms": round(statistics.median(took), 3),
        }
    finally:
        kill_tree(p)


# ------------------------------------------------------------ setup checks

def run_quiet(cmd, timeout=30, **kw):
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
        return r.returncode, r.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)


def py_has(module):
    return run_quiet([ENV.python, "-c", f"import {module}"])[0] == 0


def check_tools(servers, scenarios, need_go, need_wrk=True, need_h2load=False):
    """Debian packages (or tools) that are missing for this run."""
    missing = []
    if need_wrk and not shutil.which("wrk"):
        missing.append("wrk")
    if need_h2load and not shutil.which("h2load"):
        missing.append("nghttp2-client")
    if any(s in servers for s in ("nginx-uwsgi", "nginx-uwsgi-tls", "nginx-gunicorn")) and not NGINX:
        missing.append("nginx")
    if any(s.endswith("-tls") for s in servers) and not shutil.which("openssl"):
        missing.append("openssl")
    if any(s in servers for s in ("gunicorn", "nginx-gunicorn")) and not py_has("gunicorn"):
        missing.append("gunicorn")
    if any(s in servers for s in ("uwsgi", "uwsgi-http", "nginx-uwsgi", "nginx-uwsgi-tls")):
        if not shutil.which("uwsgi"):
            missing += ["uwsgi", "uwsgi-plugin-python3"]
        elif run_quiet(["uwsgi", "--need-plugin", "python3", "--version"])[0] != 0:
            missing.append("uwsgi-plugin-python3")
    if "waitress" in servers and not py_has("waitress"):
        missing.append("python3-waitress")
    for s in scenarios:
        if s.needs and not py_has(s.needs[0]):
            missing.append(s.needs[1])
    if need_go and not shutil.which("go"):
        missing.append("golang-go (or pass --gowsgi PATH)")
    return missing


def nginx_facts():
    """nginx's version and configuration folder (for its uwsgi_params)."""
    text = run_quiet([NGINX, "-V"])[1]
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise BenchError(f"cannot read nginx's version from `nginx -V`:\n{text}")
    ENV.nginx_version = tuple(map(int, m.groups()))
    m = re.search(r"--conf-path=(\S+)", text)
    if m:
        ENV.nginx_conf_dir = os.path.dirname(m.group(1))
    if not os.path.exists(os.path.join(ENV.nginx_conf_dir, "uwsgi_params")):
        raise BenchError(f"no uwsgi_params in {ENV.nginx_conf_dir} (from nginx's package)")


def versions(servers, wrk=True, h2load=False):
    v = {"python": run_quiet([ENV.python, "-c", "import sys; print(sys.version.split()[0])"])[1]}
    meta = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    if any("gunicorn" in s for s in servers):
        v["gunicorn"] = run_quiet([ENV.python, "-c", meta, "gunicorn"])[1]
    if any("uwsgi" in s for s in servers):
        v["uwsgi"] = run_quiet(["uwsgi", "--version"])[1]
    if "waitress" in servers:
        v["waitress"] = run_quiet([ENV.python, "-c", meta, "waitress"])[1]
    if any(s.startswith("nginx") for s in servers):
        v["nginx"] = run_quiet([NGINX, "-v"])[1].split("/", 1)[-1]
    if any(s.endswith("-tls") for s in servers):
        v["openssl"] = " ".join(run_quiet(["openssl", "version"])[1].split()[:2])
    v["flask"] = run_quiet([ENV.python, "-c", meta, "flask"])[1]
    if wrk:
        v["wrk"] = run_quiet(["wrk", "-v"])[1].splitlines()[0].split(" Copyright")[0] if shutil.which("wrk") else ""
    if h2load:
        v["h2load"] = run_quiet(["h2load", "--version"])[1]
    return v


def build_gowsgi(tmp):
    out = os.path.join(tmp, "gowsgi")
    log(f"building gowsgi: go build -o {out} ./cmd/gowsgi (in {REPO})")
    rc, text = run_quiet(["go", "build", "-o", out, "./cmd/gowsgi"], timeout=600, cwd=REPO)
    if rc != 0:
        raise BenchError(f"go build failed:\n{text}")
    return out


# ------------------------------------------------------------------ report

def fmt(x, digits=1):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


SHORT_LABELS = {"gowsgi": "gowsgi", "gowsgi-tls": "gowsgi TLS", "nginx-uwsgi": "nginx+uWSGI",
                "nginx-uwsgi-tls": "nginx+uWSGI TLS", "nginx-gunicorn": "nginx+gunicorn",
                "uwsgi-http": "uWSGI --http-socket", "gunicorn": "gunicorn", "waitress": "waitress"}


def server_label(server, short=False):
    if server == "uwsgi":
        return f"uWSGI {ENV.uwsgi_socket_opt}" if short else f"uwsgi ({ENV.uwsgi_socket_opt.lstrip('-')})"
    if server == "waitress" and ENV.waitress_threads != 1:
        return f"waitress (threads={ENV.waitress_threads})"
    return SHORT_LABELS.get(server, server) if short else server


def reference(server):
    """The server a row's ratios compare with: gowsgi-tls for TLS stacks, else gowsgi."""
    return "gowsgi-tls" if server.endswith("-tls") else "gowsgi"


def table(results, scenarios, servers):
    head = ["scenario", "server", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "RSS MiB", "procs",
            "gowsgi rps ÷ server rps", "server CPU ÷ gowsgi CPU", "req/s of every round", "errors"]
    rows = ["| " + " | ".join(head) + " |",
            "|" + "|".join(["---", "---"] + ["---:"] * 9 + ["---"]) + "|"]
    by = {(r["scenario"], r["server"]): r for r in results}
    for sc in scenarios:
        for sv in servers:
            r = by.get((sc.name, sv))
            if r is None:
                continue
            if r.get("failed"):
                rows.append(f"| {sc.title} | {server_label(sv)} | – | – | – | – | – | – | – | – | – | "
                            f"**FAILED**: {r['failed']} |")
                continue
            g = by.get((sc.name, reference(sv)))
            g_ok = g is not None and not g.get("failed") and g.get("rps")
            rps_ratio = cpu_ratio = "–"
            if g_ok and r.get("rps"):
                rps_ratio = f"{g['rps'] / r['rps']:.2f}×"
            if g_ok and g.get("cpu_us_per_req") and r.get("cpu_us_per_req") is not None:
                cpu_ratio = f"{r['cpu_us_per_req'] / g['cpu_us_per_req']:.2f}×"
            err = f"⚠ {r['errors']}" if r["errors"] else "0"
            rounds = " / ".join(fmt(x) for x in r.get("rounds_rps", [r["rps"]]))
            rows.append(f"| {sc.title} | {server_label(sv)} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 2)} | "
                        f"{fmt(r['p99_ms'], 2)} | {fmt(r['cpu_us_per_req'])} | {fmt(r['rss_mib'])} | "
                        f"{r['processes']} | {rps_ratio} | {cpu_ratio} | {rounds} | {err} |")
    return "\n".join(rows)


def issue_tables(results, scenarios, servers):
    """Compact tables: a row per scenario, a column per server; one of CPU µs/req,
    one of req/s with p99. ⚠ marks a cell whose run had errors (full table)."""
    by = {(r["scenario"], r["server"]): r for r in results}
    head = "| scenario | " + " | ".join(server_label(s, short=True) for s in servers) + " |"
    sep = "|---|" + "---:|" * len(servers)

    def cells(sc, cell):
        out = []
        for sv in servers:
            r = by.get((sc.name, sv))
            if r is None:
                out.append("")
            elif r.get("failed"):
                out.append("FAILED")
            else:
                out.append(cell(r) + (" ⚠" if r["errors"] else ""))
        return out

    cpu = ["CPU µs per request (every process of the stack):", "", head, sep]
    rps = ["req/s (p99 ms):", "", head, sep]
    for sc in scenarios:
        cpu.append(f"| {sc.name} | " + " | ".join(cells(sc, lambda r: fmt(r["cpu_us_per_req"]))) + " |")
        rps.append(f"| {sc.name} | " + " | ".join(
            cells(sc, lambda r: f"{fmt(r['rps'])} ({fmt(r['p99_ms'], 2)})")) + " |")
    return "\n".join(cpu + [""] + rps)


def h2_table(results, scenarios, servers):
    head = ["scenario", "client", "server", "req/s", "mean ms", "max ms", "CPU µs/req", "RSS MiB",
            "procs", "failed", "errored", "non-2xx", "req/s of every round", "errors"]
    rows = ["| " + " | ".join(head) + " |",
            "|" + "|".join(["---", "---", "---"] + ["---:"] * 10 + ["---"]) + "|"]
    by = {(r["scenario"], r["client"], r["server"]): r for r in results}
    for sc in scenarios:
        for cl in H2_CLIENTS:
            for sv in servers:
                r = by.get((sc.name, cl, sv))
                if r is None:
                    continue
                if r.get("failed"):
                    rows.append(f"| {sc.title} | {H2_CLIENT_TITLES[cl]} | {server_label(sv)} | "
                                + "– | " * 10 + f"**FAILED**: {r['failed']} |")
                    continue
                err = f"⚠ {r['errors']}" if r["errors"] else "0"
                rounds = " / ".join(fmt(x) for x in r.get("rounds_rps", [r["rps"]]))
                rows.append(f"| {sc.title} | {H2_CLIENT_TITLES[cl]} | {server_label(sv)} | {fmt(r['rps'])} | "
                            f"{fmt(r['mean_ms'], 2)} | {fmt(r['max_ms'], 2)} | {fmt(r['cpu_us_per_req'])} | "
                            f"{fmt(r['rss_mib'])} | {r['processes']} | {r['h2_failed']} | {r['h2_errored']} | "
                            f"{r['non2xx']} | {rounds} | {err} |")
    return "\n".join(rows)


def h2_issue_table(results, scenarios, servers):
    by = {(r["scenario"], r["client"], r["server"]): r for r in results}
    labels = [server_label(s, short=True) for s in servers]
    rows = ["| scenario | client | " + " | ".join(f"{l} µs/req" for l in labels) + " | "
            + " | ".join(f"{l} req/s" for l in labels) + " |",
            "|---|---|" + "---:|" * (2 * len(servers))]
    for sc in scenarios:
        for cl in H2_CLIENTS:
            rs = [by.get((sc.name, cl, sv)) for sv in servers]
            if not any(rs):
                continue

            def cell(r, key):
                if r is None:
                    return ""
                if r.get("failed"):
                    return "FAILED"
                return fmt(r[key]) + (" ⚠" if r["errors"] else "")
            rows.append(f"| {sc.name} | {H2_CLIENT_TITLES[cl]} | "
                        + " | ".join(cell(r, "cpu_us_per_req") for r in rs) + " | "
                        + " | ".join(cell(r, "rps") for r in rs) + " |")
    return "\n".join(rows)


def notes(args, servers, info):
    n = [f"wrk -t1 -c{CONNECTIONS} -d{args.duration}s --latency, keep-alive, after a {WARMUP_SECONDS}s "
         f"warm-up; every server runs 1 Python process with 1 request thread "
         f"({info['versions'].get('python', '?')} at {ENV.python}). "
         f"Machine: {os.cpu_count()} CPUs shared by wrk and the server, so req/s is partly the "
         f"machine's; CPU µs/req (all processes of the server) is the server's own cost. "
         f"Each scenario ran {args.rounds} round(s) with the servers taking turns; a row is the run of "
         f"median req/s of its server (the machine's speed drifts over minutes, so ratios within a "
         f"round mean more than absolute figures)."]
    if "gunicorn" in servers:
        n.append(f"gunicorn {info['versions'].get('gunicorn', '')}: `-w 1` sync worker; the sync worker "
                 "does not do keep-alive, so it closes the connection after every response and wrk reconnects.")
    ng = [s for s in servers if s.startswith("nginx")]
    if ng:
        n.append(f"nginx {info['versions'].get('nginx', '')} (`worker_processes 1`, otherwise its defaults: "
                 "keep-alive to clients, at most 1000 requests per connection, `access_log off`; bench/README.md "
                 "lists every directive) in front of the app server over a unix socket: nginx-uwsgi* with "
                 "`uwsgi_pass` to `uwsgi --socket` (1 process, 1 thread, `--master`), nginx-gunicorn with "
                 "`proxy_pass` to gunicorn's sync worker (HTTP/1.0, a connection per request). CPU, RSS and "
                 "procs count both process trees (nginx master and worker, and the app server's).")
    if any(s.endswith("-tls") for s in servers):
        n.append("TLS stacks (gowsgi-tls, nginx-uwsgi-tls) use the same self-signed RSA 2048 certificate "
                 f"({info['versions'].get('openssl', 'openssl')}); their ratio columns compare with gowsgi-tls.")
    if "uwsgi-http" in servers:
        n.append(f"uwsgi-http: uwsgi {info['versions'].get('uwsgi', '')} `--plugin python3 --http-socket ADDR "
                 "--master --processes 1 --threads 1 --disable-logging`, no nginx; it closes the connection after every response without saying so "
                 "(no keep-alive): wrk counts a socket read error each time, then reconnects.")
    if "uwsgi" in servers:
        n.append(f"uwsgi {info['versions'].get('uwsgi', '')}: `{ENV.uwsgi_socket_opt}` "
                 "`--plugin python3 --master --processes 1 --threads 1 --disable-logging`; its CPU and RSS "
                 "include the master process. The python3 plugin embeds Debian's Python, whatever --python says.")
        if ENV.uwsgi_socket_opt == "--http11-socket":
            n[-1] += (" With `--http11-socket` and one single-threaded process, uwsgi keeps reading the keep-alive "
                      "connection it is serving and leaves the others waiting, so its figures describe ~1 "
                      "connection, not 16 (flagged in the errors column); `--uwsgi-socket http-socket` "
                      "serves every connection, one request per connection.")
        else:
            n[-1] += (" `--http-socket` closes the connection after every response without saying so (no "
                      "keep-alive): wrk counts a socket read error each time, then reconnects.")
    if "waitress" in servers:
        w = (f"waitress {info['versions'].get('waitress', '')}: `--threads={ENV.waitress_threads}`; waitress "
             "always adds its own I/O thread (asyncore loop) that reads requests and writes responses.")
        if ENV.waitress_threads != 1:
            w += (f" threads={ENV.waitress_threads} instead of 1: waitress is multi-threaded by design, "
                  "so it runs more than one request at a time, unlike the others.")
        n.append(w)
    if any(s.startswith("gowsgi") for s in servers):
        n.append("gowsgi: `workers: 1, threads: 1`, `-log-level warn`, Go threads by default (GOMAXPROCS: half "
                 "the CPUs, at least 1, unless the environment sets it), without -keep-sysmon-awake (see "
                 "bench/RESULTS.md, Tuning); CPU and RSS include the Go host and its worker.")
    n.append("errors: non-2xx responses, wrk socket errors (connect/read/write/timeout), wrong response "
             "bodies (post scenario, checked by post1m.lua) and a failed check request before the run; "
             "⚠ marks a row with any.")
    return "\n".join(f"{i}. {t}" for i, t in enumerate(n, 1))


def h2_notes(args, servers, info):
    n = [f"{info['versions'].get('h2load', 'h2load')}: `h2load -t1 -c{CONNECTIONS} -n{args.h2_requests}` with "
         "`--h1` (HTTP/1.1 over TLS), `-m1` (HTTP/2, one stream per connection) or `-m10` (ten), each after "
         f"a warm-up of {args.h2_warmup} requests, against the same stack in turn; {args.rounds} round(s), a row "
         "is the run of median req/s. h2load gives no percentiles: mean and max of its `time for request`.",
         "CPU µs/req: CPU of every process of the stack during the measured run ÷ requests h2load completed "
         "(`done`). failed, errored: h2load's counts; non-2xx: its status codes other than 2xx; a protocol "
         "other than the one asked (ALPN) is an error too."]
    if "nginx-uwsgi-tls" in servers:
        n.append(f"nginx runs here with `keepalive_requests {H2_KEEPALIVE_REQUESTS}` instead of its default 1000: "
                 "after 1000 requests on a connection nginx sends GOAWAY, and h2load counts the requests it "
                 "still had for that connection as failed instead of reconnecting. gowsgi sets no such limit.")
        if ENV.uwsgi_listen:
            n.append(f"uWSGI behind nginx runs with `--listen {ENV.uwsgi_listen}` (--uwsgi-listen).")
        else:
            n.append("uWSGI's listen queue is its default, 100: with `-m10` nginx has up to 160 requests for it, "
                     "so connect() to its socket fails (EAGAIN) while the queue is full and nginx answers 502 "
                     "(non-2xx, failed); `--uwsgi-listen 256` avoids it.")
    return "\n".join(f"{i}. {t}" for i, t in enumerate(n, 1))


# -------------------------------------------------------------------- main

ENV = None


def parse_duration(text):
    m = re.fullmatch(r"\s*(\d+)\s*s?\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(1)) > 600:
        raise argparse.ArgumentTypeError("a whole number of seconds from 1 to 600, like 10 or 10s")
    return int(m.group(1))


def parse_list(allowed):
    def parse(text):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (comma-separated)")
        return [x for x in allowed if x in items]
    return parse


def _terminate(signum, frame):
    raise Terminated(signum)


def median_run(runs):
    """The run of median throughput (the lower middle one for an even count),
    with every run's req/s and CPU per request, and the errors of every run
    (by round); a failed run fails the row."""
    failed = [r for r in runs if r.get("failed")]
    if failed:
        return failed[0]
    ordered = sorted(runs, key=lambda r: r["rps"])
    r = dict(ordered[(len(ordered) - 1) // 2])
    r["rounds_rps"] = [round(x["rps"]) for x in runs]
    r["rounds_cpu_us_per_req"] = [x["cpu_us_per_req"] for x in runs]
    if len(runs) > 1:
        rounds_of = {}  # error text -> the rounds that had it
        for i, x in enumerate(runs, 1):
            if x["errors"]:
                rounds_of.setdefault(x["errors"], []).append(str(i))
        r["errors"] = "; ".join(
            f"{text} ({'every round' if len(rs) == len(runs) else ('round ' if len(rs) == 1 else 'rounds ') + ', '.join(rs)})"
            for text, rs in rounds_of.items())
    return r


def main():
    global ENV
    ap = argparse.ArgumentParser(description="Benchmark gowsgi against nginx+uWSGI, nginx+gunicorn, "
                                             "uWSGI, gunicorn and waitress.")
    ap.add_argument("--duration", type=parse_duration, default=10, metavar="SECONDS",
                    help="length of each measured wrk run (default 10)")
    ap.add_argument("--rounds", type=int, default=3, metavar="N",
                    help="measure every server N times per scenario, taking turns, and report the "
                         "median-throughput run of each (default 3; the machine's speed drifts)")
    ap.add_argument("--scenarios", type=parse_list([s.name for s in SCENARIOS]),
                    default=[s.name for s in SCENARIOS],
                    help="comma-separated subset of: " + ",".join(s.name for s in SCENARIOS))
    ap.add_argument("--servers", type=parse_list(SERVERS), default=DEFAULT_SERVERS,
                    help="comma-separated subset of: " + ",".join(SERVERS)
                         + " (default: " + ",".join(DEFAULT_SERVERS) + ")")
    h2 = ap.add_mutually_exclusive_group()
    h2.add_argument("--no-h2", action="store_true", help="skip the h2load (HTTP/2 over TLS) section")
    h2.add_argument("--h2-only", action="store_true",
                    help="only the h2load section (no wrk runs, no idle measurement)")
    ap.add_argument("--h2-requests", type=int, default=100000, metavar="N",
                    help="h2load -n of each measured run (default 100000)")
    ap.add_argument("--h2-warmup", type=int, default=5000, metavar="N",
                    help="h2load -n of the warm-up run before each measured one (default 5000; 0: none)")
    ap.add_argument("--h2-scenarios", type=parse_list([s.name for s in SCENARIOS]),
                    default=H2_SCENARIOS,
                    help="scenarios of the h2load section, within --scenarios (default: "
                         + ",".join(H2_SCENARIOS) + ")")
    ap.add_argument("--table", choices=["full", "issue", "both"], default="both",
                    help="full: a row per scenario and server with every column; issue: compact tables "
                         "(a row per scenario, a column per server); both (default)")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter for the apps of every server (default /usr/bin/python3)")
    ap.add_argument("--gowsgi", metavar="PATH", help="use this gowsgi binary instead of building one")
    ap.add_argument("--waitress-threads", type=int, default=1, metavar="N",
                    help="waitress --threads (default 1)")
    ap.add_argument("--uwsgi-socket", choices=["auto", "http11-socket", "http-socket"], default="auto",
                    help="uwsgi's HTTP option: auto (default) takes --http11-socket (keep-alive) if this "
                         "uwsgi has it, else --http-socket (one request per connection)")
    ap.add_argument("--uwsgi-listen", type=int, metavar="N",
                    help="uWSGI --listen (socket backlog) behind nginx; default: uWSGI's own, 100, which "
                         "160 requests in flight (h2load -c16 -m10) overflow: nginx answers 502 to some")
    ap.add_argument("--no-idle", action="store_true",
                    help="skip the gowsgi idle-memory and reload measurement")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep the tmp dir (configs, certificate, every server's log) even when all went well")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="dump raw results as JSON to FILE; without FILE, to stdout (the table then goes to stderr)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.h2_requests < CONNECTIONS or args.h2_warmup < 0:
        ap.error(f"--h2-requests must be at least {CONNECTIONS}, --h2-warmup at least 0")

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    scenarios = [s for s in SCENARIOS if s.name in args.scenarios]
    servers = [] if args.h2_only else args.servers
    h2_servers = [] if args.no_h2 else [s for s in args.servers if s in H2_SERVERS]
    h2_scenarios = [] if args.no_h2 else [s for s in scenarios if s.name in args.h2_scenarios]
    if not (h2_servers and h2_scenarios):
        h2_servers, h2_scenarios = [], []
    if args.h2_only and not h2_servers:
        ap.error("--h2-only needs one of " + ",".join(H2_SERVERS) + " in --servers and one of "
                 "--h2-scenarios in --scenarios")
    idle_run = not args.no_idle and not args.h2_only
    all_servers = servers + [s for s in h2_servers if s not in servers]
    tmp = tempfile.mkdtemp(prefix="gowsgi-bench-")
    ENV = Env(args, tmp)
    if ENV.gowsgi:
        ENV.gowsgi = os.path.abspath(ENV.gowsgi)
    need_gowsgi = any(s in all_servers for s in ("gowsgi", "gowsgi-tls")) or idle_run
    keep_tmp = args.keep_tmp
    try:
        missing = check_tools(all_servers, scenarios, need_go=need_gowsgi and not args.gowsgi,
                              need_wrk=bool(servers), need_h2load=bool(h2_servers))
        if missing:
            pkgs = [m for m in missing if " " not in m]
            log("bench/run.py: missing: " + ", ".join(missing))
            if pkgs:
                log("install them with: apt-get install " + " ".join(pkgs))
            log(f"(gunicorn, waitress and flask must be importable by --python {ENV.python})")
            return 2
        if need_gowsgi and args.gowsgi and not os.access(ENV.gowsgi, os.X_OK):
            log(f"bench/run.py: --gowsgi {args.gowsgi} is not an executable file")
            return 2
        if "uwsgi" in servers:
            help_text = run_quiet(["uwsgi", "--help"])[1]
            if args.uwsgi_socket == "auto":
                ENV.uwsgi_socket_opt = "--http11-socket" if "--http11-socket" in help_text else "--http-socket"
            elif "--" + args.uwsgi_socket in help_text:
                ENV.uwsgi_socket_opt = "--" + args.uwsgi_socket
            else:
                log(f"bench/run.py: this uwsgi has no --{args.uwsgi_socket} option")
                return 2
        if any(s.startswith("nginx") for s in all_servers):
            nginx_facts()
        if any(s.endswith("-tls") for s in all_servers):
            make_certificate()
        if any(s.post for s in h2_scenarios):
            ENV.post_file = os.path.join(tmp, "post1m.bin")
            with open(ENV.post_file, "wb") as f:
                f.write(b"a" * POST_SIZE)
        if need_gowsgi and not ENV.gowsgi:
            ENV.gowsgi = build_gowsgi(tmp)

        info = {"duration_s": args.duration, "rounds": args.rounds, "connections": CONNECTIONS, "wrk_threads": 1,
                "warmup_s": WARMUP_SECONDS, "cpus": os.cpu_count(), "python": ENV.python,
                "gowsgi": ENV.gowsgi, "versions": versions(all_servers, wrk=bool(servers), h2load=bool(h2_servers)),
                "uwsgi_socket_option": ENV.uwsgi_socket_opt, "waitress_threads": ENV.waitress_threads,
                "nginx": ENV.nginx if any(s.startswith("nginx") for s in all_servers) else None,
                "certificate": "self-signed RSA 2048, CN=localhost" if ENV.cert else None,
                "h2load": {"requests": args.h2_requests, "warmup_requests": args.h2_warmup,
                           "clients": {k: v[0] for k, v in H2_CLIENTS.items()},
                           "servers": h2_servers, "scenarios": [s.name for s in h2_scenarios]}
                if h2_servers else None}
        results = []
        for sc in (scenarios if servers else []):
            runs = {sv: [] for sv in servers}
            for rnd in range(args.rounds):
                # Servers take turns, starting one further each round, so that
                # a drift of the machine's speed falls on all of them alike.
                order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
                for sv in order:
                    log(f"{sc.name} × {sv}: round {rnd + 1}/{args.rounds}, measuring for {args.duration}s")
                    try:
                        r = measure(sv, sc, args.duration)
                        log(f"  {r['rps']:.0f} req/s, p50 {fmt(r['p50_ms'], 2)} ms, p99 {fmt(r['p99_ms'], 2)} ms, "
                            f"{fmt(r['cpu_us_per_req'])} µs CPU/req, {r['rss_mib']} MiB, "
                            f"{r['processes']} processes"
                            + (f"  ⚠ {r['errors']}" if r["errors"] else ""))
                    except BenchError as e:
                        log(f"  FAILED: {e}")
                        r = {"server": sv, "scenario": sc.name, "failed": str(e).splitlines()[0],
                             "detail": str(e)}
                    runs[sv].append(r)
            for sv in servers:
                results.append(median_run(runs[sv]))

        h2_results = []
        for sc in h2_scenarios:
            runs = {(cl, sv): [] for cl in H2_CLIENTS for sv in h2_servers}
            for rnd in range(args.rounds):
                order = h2_servers[rnd % len(h2_servers):] + h2_servers[:rnd % len(h2_servers)]
                for sv in order:
                    log(f"h2load {sc.name} × {sv}: round {rnd + 1}/{args.rounds}, "
                        f"{len(H2_CLIENTS)} clients × {args.h2_requests} requests")
                    try:
                        rs = measure_h2(sv, sc, args.h2_requests, args.h2_warmup)
                    except BenchError as e:
                        log(f"  FAILED: {e}")
                        rs = [{"server": sv, "scenario": sc.name, "client": cl,
                               "failed": str(e).splitlines()[0], "detail": str(e)} for cl in H2_CLIENTS]
                    for r in rs:
                        if r.get("failed"):
                            log(f"  {r['client']}: FAILED: {r['detail']}")
                        else:
                            log(f"  {r['client']}: {r['rps']:.0f} req/s, mean {fmt(r['mean_ms'], 2)} ms, "
                                f"max {fmt(r['max_ms'], 2)} ms, {fmt(r['cpu_us_per_req'])} µs CPU/req, "
                                f"{r['rss_mib']} MiB, {r['processes']} processes"
                                + (f"  ⚠ {r['errors']}" if r["errors"] else ""))
                        runs[(r["client"], sv)].append(r)
            for cl in H2_CLIENTS:
                for sv in h2_servers:
                    h2_results.append(median_run(runs[(cl, sv)]))

        idle = None
        if idle_run:
            log(f"gowsgi: {IDLE_APPS} idle apps, {RELOADS} no-op reloads")
            try:
                idle = gowsgi_idle_and_reload()
            except BenchError as e:
                log(f"  FAILED: {e}")
                idle = {"failed": str(e)}

        out = sys.stderr if args.json == "-" else sys.stdout
        def print_tables(full, compact, notes_text):
            """The full and/or compact table (--table), then the notes."""
            if args.table in ("full", "both"):
                print(full(), file=out)
                print("", file=out)
            if args.table in ("issue", "both"):
                print(compact(), file=out)
                print("", file=out)
            print(notes_text, file=out)

        if servers:
            print_tables(lambda: table(results, scenarios, servers),
                         lambda: issue_tables(results, scenarios, servers),
                         notes(args, servers, info))
        if h2_servers:
            if servers:
                print("", file=out)
            print("HTTP/2 over TLS (h2load):", file=out)
            print("", file=out)
            print_tables(lambda: h2_table(h2_results, h2_scenarios, h2_servers),
                         lambda: h2_issue_table(h2_results, h2_scenarios, h2_servers),
                         h2_notes(args, h2_servers, info))
        if idle is not None:
            print("", file=out)
            if idle.get("failed"):
                print(f"gowsgi idle memory / reload: **FAILED**: {idle['failed'].splitlines()[0]}", file=out)
            else:
                print(f"gowsgi host RSS with {idle['apps']} idle apps mounted (gowsgi process only, workers "
                      f"excluded): **{idle['host_rss_mib']} MiB** (whole tree with its "
                      f"{idle['tree_processes'] - 1} workers: {idle['tree_rss_mib']} MiB)", file=out)
                took = ", ".join(f"{t:.3f}" for t in idle["reload_took_ms"])
                print(f"gowsgi no-op reload (SIGHUP, unchanged config, {idle['apps']} apps), `took` of the "
                      f"`config applied` log line: **median {idle['reload_median_ms']:.3f} ms** "
                      f"(runs: {took} ms)", file=out)
        out.flush()
        if args.json:
            dump = {"info": info, "results": results, "h2_results": h2_results, "gowsgi_idle": idle}
            if args.json == "-":
                json.dump(dump, sys.stdout, indent=2)
                print()
            else:
                with open(args.json, "w") as f:
                    json.dump(dump, f, indent=2)
                    f.write("\n")
        failed = (any(r.get("failed") for r in results + h2_results)
                  or (idle or {}).get("failed"))
        if failed:
            keep_tmp = True
            log(f"bench/run.py: some measurements failed; their logs are kept in {tmp}")
        if args.keep_tmp and not failed:
            log(f"bench/run.py: configs and logs are in {tmp}")
        return 1 if failed else 0
    except BenchError as e:
        log(f"bench/run.py: {e}")
        keep_tmp = True
        return 1
    except (KeyboardInterrupt, Terminated):
        log("bench/run.py: interrupted; stopping the servers")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_all()
        if not keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
