#!/usr/bin/python3
"""Preload and scaling measurements of issue 18, side by side in one run.

    /usr/bin/python3 bench/preload.py [--gowsgi PATH]

1. Total PSS of the process tree serving bench/apps/heavy.py with 4
   workers: gowsgi without and with preload, gunicorn --preload, uWSGI
   (which forks after loading by default).
2. Replacement: a preloaded gowsgi worker of an app whose import takes 1 s
   is killed with SIGKILL; time until a request is answered by its
   replacement (median of 10).
3. 50 apps with workers {min: 0}: the host's tree PSS with no traffic, and
   the time of the first request to one of them (import 1 s).
Needs gunicorn and uwsgi (uwsgi-plugin-python3); builds gowsgi unless given.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from run import free_port, process_tree as tree

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
PY = "/usr/bin/python3"


def pss(root):
    """Total PSS (bytes) and process count of root's tree."""
    total = n = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        n += 1
        except OSError:
            pass
    return total, n


def get(port, path="/", timeout=30):
    """(status, body); an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_ready(port, deadline=60):
    end = time.time() + deadline
    while time.time() < end:
        try:
            return get(port, timeout=5)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not answer")


def start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        for pid in tree(p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()


def gowsgi_config(path, port, apps):
    with open(path, "w") as f:
        f.write(f'listeners: ["127.0.0.1:{port}"]\nlog: {{access: false}}\napps:\n')
        for name, opts in apps:
            f.write(f"  {name}: {{module: heavy, dir: {APPS}, python: {PY}, {opts}}}\n")
        f.write("mounts:\n")
        for i, (name, _) in enumerate(apps):
            f.write(f'  "/{name}": {name}\n' if i else f'  "/": {name}\n')


def settle(root, want):
    """Wait until root's tree has want processes, then a moment for pages to settle."""
    end = time.time() + 60
    while len(tree(root)) < want and time.time() < end:
        time.sleep(0.1)
    time.sleep(1)


def memory(gowsgi, tmp, log):
    rows = []
    servers = {
        "gowsgi, each worker imports": lambda port: [gowsgi, "-c", cfg(port, "workers: 4")],
        "gowsgi, preload: true": lambda port: [gowsgi, "-c", cfg(port, "workers: 4, preload: true")],
        "gunicorn --preload": lambda port: [PY, "-m", "gunicorn", "--preload", "-w", "4", "--chdir", APPS,
                                            "--bind", f"127.0.0.1:{port}", "heavy"],
        "uWSGI (forks after loading)": lambda port: ["uwsgi", "--plugin", "python3", "--http-socket", f"127.0.0.1:{port}",
                                                     "--master", "--processes", "4", "--chdir", APPS, "--module", "heavy",
                                                     "--need-app", "--disable-logging", "--die-on-term"],
    }

    def cfg(port, opts):
        path = os.path.join(tmp, f"mem-{port}.yaml")
        gowsgi_config(path, port, [("heavy", opts)])
        return path

    for name, cmd in servers.items():
        port = free_port()
        p = start(cmd(port), log)
        try:
            wait_ready(port)
            settle(p.pid, 5)
            for _ in range(40):
                get(port)
            total, n = pss(p.pid)
            rows.append((name, total, n))
        finally:
            stop(p)
    return rows


def start_gowsgi(gowsgi, tmp, log, apps):
    """A gowsgi serving apps ((name, options) pairs) on a free port: (process, port)."""
    port = free_port()
    path = os.path.join(tmp, f"gowsgi-{port}.yaml")
    gowsgi_config(path, port, apps)
    return start([gowsgi, "-c", path], log), port


def replacement(gowsgi, tmp, log):
    p, port = start_gowsgi(gowsgi, tmp, log, [("slow", "workers: 1, preload: true, env: {HEAVY_IMPORT_SECONDS: '1'}")])
    times = []
    try:
        _, pid = wait_ready(port)
        for _ in range(10):
            t0 = time.monotonic()
            os.kill(int(pid), signal.SIGKILL)
            while True:
                status, new = get(port)
                if status == 200 and new != pid:
                    break
            times.append(time.monotonic() - t0)
            pid = new
    finally:
        stop(p)
    return times


def cold(gowsgi, tmp, log):
    apps = [(f"a{i}", "workers: {min: 0, max: 2, idle_timeout: 60s}, preload: true, "
             "env: {HEAVY_IMPORT_SECONDS: '1'}") for i in range(50)]
    p, port = start_gowsgi(gowsgi, tmp, log, apps)
    try:
        end = time.time() + 30
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1)
        idle, n = pss(p.pid)
        t0 = time.monotonic()
        status, _ = get(port, "/a7")
        first = time.monotonic() - t0
        return idle, n, status, first
    finally:
        stop(p)


def import_time():
    t0 = time.monotonic()
    subprocess.run([PY, "-c", "import heavy"], cwd=APPS, env=dict(os.environ, HEAVY_IMPORT_SECONDS="1"), check=True)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gowsgi")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open(os.path.join(tmp, "log"), "w") as log:
        gowsgi = args.gowsgi
        if not gowsgi:
            gowsgi = os.path.join(tmp, "gowsgi")
            subprocess.run(["go", "build", "-o", gowsgi, "./cmd/gowsgi"], cwd=os.path.dirname(HERE), check=True)
        print("| server, heavy.py, 4 workers | total PSS | processes |\n|---|---:|---:|")
        for name, total, n in memory(gowsgi, tmp, log):
            print(f"| {name} | {total / 2**20:.0f} MiB | {n} |")
        times = replacement(gowsgi, tmp, log)
        print(f"\nReplacement after SIGKILL (preload, import 1 s): median {statistics.median(times) * 1000:.1f} ms, "
              f"max {max(times) * 1000:.1f} ms over {len(times)}")
        idle, n, status, first = cold(gowsgi, tmp, log)
        print(f"\n50 apps with min 0, no traffic: host tree PSS {idle / 2**20:.1f} MiB in {n} process(es); "
              f"first request {status} in {first * 1000:.0f} ms (import alone: {import_time() * 1000:.0f} ms)")


if __name__ == "__main__":
    sys.exit(main())
