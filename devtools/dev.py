"""``make dev``: run the whole of Lokaly on this machine, in one terminal.

1. Resolve DATABASE_URL and REDIS_URL: when unset, start (or find) the embedded
   PostgreSQL and Redis under .data/ (lokaly_core/conf/embedded.py); DEBUG defaults to 1,
   so the development secrets are accepted.
2. ``manage_admin.py migrate_locked`` then ``manage_admin.py seed_demo`` (prints the demo
   accounts).
3. Start the public API (``manage_public.py serve``, port 3000), the admin API
   (``manage_admin.py serve``, port 3001) and the worker (``manage_admin.py run_worker``),
   each line of their output prefixed with the process's name, and print the URLs once
   both ``/health/ready`` answer 200.
4. Ctrl-C (SIGINT) or SIGTERM: SIGTERM to every child's process group (uvicorn and
   gunicorn workers included), SIGKILL what is still there after 10 s, exit 0. A second
   Ctrl-C kills at once. If a child exits on its own, the others are stopped and this
   exits 1, naming it.

Standard library only; run it with the virtualenv's python (``make dev`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
# Not resolved through symlinks: .venv/bin/python must stay the venv's interpreter.
PYTHON = os.path.abspath(sys.executable)
STOP_GRACE_SECONDS = 10.0

COLOURS = {
    "dev": "1",  # bold
    "migrate": "34",
    "seed": "34",
    "public": "36",
    "admin": "35",
    "worker": "33",
}
NAME_WIDTH = max(len(name) for name in COLOURS)


class Output:
    """Writes whole lines from several threads, each prefixed with a (coloured) name."""

    def __init__(self) -> None:
        # Re-entrant: the signal handler prints from the main thread, maybe mid-line.
        self._lock = threading.RLock()
        self._colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self._broken = False

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{NAME_WIDTH}} |"
        if self._colour:
            prefix = f"\033[{COLOURS.get(name, '0')}m{prefix}\033[0m"
        with self._lock:
            if self._broken:
                return
            try:
                sys.stdout.write(f"{prefix} {text.rstrip()}\n")
                sys.stdout.flush()
            except OSError:
                # The reader went away (`make dev | tee` and Ctrl-C kills tee first): go on
                # draining the children's output and stopping them, silently.
                self._broken = True
                sys.stdout = open(os.devnull, "w")  # so the exit-time flush finds no pipe

    def dev(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.line("dev", part)


out = Output()


class Child:
    """One command, in its own session (so its process group holds all its descendants)."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, name=f"read-{self.name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            out.line(self.name, raw.decode("utf-8", errors="replace"))
        self.proc.stdout.close()

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def group_alive(self) -> bool:
        """True while any (non-zombie) process of this child's process group is left."""
        if self.proc is None:
            return False
        self.proc.poll()  # reap the leader, so that it does not count as a zombie
        return _group_has_processes(self.proc.pid)

    def signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def finish_output(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=2)


def _group_has_processes(pgid: int) -> bool:
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # not Linux: ask the kernel (counts zombies)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


class Supervisor:
    def __init__(self, ready_timeout: float) -> None:
        self.ready_timeout = ready_timeout
        self.stop_requested = threading.Event()
        self.force = threading.Event()
        self.children: list[Child] = []
        self.public_base = "http://127.0.0.1:3000"
        self.admin_base = "http://127.0.0.1:3001"

    # -- signals ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested.is_set():
            # Only a second Ctrl-C escalates: a SIGTERM may arrive twice (make forwards it).
            if signum == signal.SIGINT and not self.force.is_set():
                self.force.set()
                out.dev("second Ctrl-C: killing everything now")
            return
        out.dev(f"got {signal.Signals(signum).name}: stopping (Ctrl-C again to kill at once)")
        self.stop_requested.set()

    # -- steps -----------------------------------------------------------------------------

    def run_step(self, child: Child, env: dict[str, str]) -> int | None:
        """Run a set-up command to its end; None when a stop was asked for meanwhile."""
        self.children.append(child)
        child.start(env)
        assert child.proc is not None
        while child.proc.poll() is None:
            if self.stop_requested.is_set():
                self.stop_all()
                return None
            time.sleep(0.05)
        child.finish_output()
        return child.proc.returncode

    def supervise(
        self, services: list[Child], env: dict[str, str], ready_urls: list[str]
    ) -> Child | None:
        """Run the services until a stop is asked for (-> None) or one exits (-> that one)."""
        for child in services:
            self.children.append(child)
            child.start(env)
        started = time.monotonic()
        deadline = started + self.ready_timeout
        ready = warned = False
        next_probe = 0.0
        while not self.stop_requested.is_set():
            for child in services:
                if child.returncode is not None:
                    return child
            now = time.monotonic()
            if not ready and now >= next_probe:
                answers = [probe(url) for url in ready_urls]
                if all(status == 200 for status, _ in answers):
                    ready = True
                    self.print_ready(time.monotonic() - started)
                elif time.monotonic() > deadline and not warned:
                    warned = True
                    out.dev(f"not ready after {self.ready_timeout:.0f} s; still waiting:")
                    for url, (status, body) in zip(ready_urls, answers, strict=True):
                        out.dev(f"  {url} -> {status or 'no answer'} {body}")
                    out.dev("  a 503 names the failing dependency (database or redis) in 'checks'.")
                next_probe = time.monotonic() + 0.5
            self.stop_requested.wait(0.2)
        return None

    def print_ready(self, seconds: float) -> None:
        out.dev(f"ready in {seconds:.1f} s:")
        out.dev(f"  public API  {self.public_base}/api/docs/   (HTTP and ws://…/ws/orders/<id>/)")
        out.dev(f"  admin site  {self.admin_base}/admin/   (API docs: {self.admin_base}/api/docs/)")
        out.dev("  demo accounts: see the 'seed |' lines above. Ctrl-C stops everything.")

    # -- stopping --------------------------------------------------------------------------

    def stop_all(self) -> None:
        alive = [c for c in self.children if c.group_alive()]
        for child in alive:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while alive and time.monotonic() < deadline and not self.force.is_set():
            time.sleep(0.1)
            alive = [c for c in alive if c.group_alive()]
        for child in alive:
            if not self.force.is_set():
                out.dev(f"{child.name} still running after {STOP_GRACE_SECONDS:.0f} s: SIGKILL")
            child.signal_group(signal.SIGKILL)
        for child in self.children:
            if child.proc is not None:
                try:
                    child.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    out.dev(f"{child.name} (pid {child.proc.pid}) did not exit after SIGKILL")
            child.finish_output()


def probe(url: str) -> tuple[int | None, str]:
    """GET url without any proxy: (status, short body) or (None, the error)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode("utf-8", errors="replace")
        try:
            body = json.dumps(json.loads(body).get("checks", body))
        except (ValueError, AttributeError):
            pass
        return exc.code, body
    except (OSError, ValueError) as exc:
        return None, str(exc)


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def redact(url: str) -> str:
    """The URL without its password, for printing."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:
        return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hostpart}"
    return url


def resolve_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if not env.get("DEBUG"):
        env["DEBUG"] = "1"
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not env.get(name)]
    if missing:
        sys.path.insert(0, str(ROOT))
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # pgserver's platformdirs
        from lokaly_core.conf import embedded

        out.dev(f"{' and '.join(missing)} not set: using the embedded server(s), data in "
                f"{embedded.DATA_DIR}")
        if "DATABASE_URL" in missing:
            env["DATABASE_URL"] = embedded.database_url()
        if "REDIS_URL" in missing:
            env["REDIS_URL"] = embedded.redis_url()
    out.dev(f"DATABASE_URL={redact(env['DATABASE_URL'])}")
    out.dev(f"REDIS_URL={redact(env['REDIS_URL'])}  DEBUG={env['DEBUG']}")
    return env


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ready-timeout", type=float, default=120.0,
                        help="Seconds to wait for both /health/ready before warning (default 120).")
    parser.add_argument("--no-seed", action="store_true", help="Skip seed_demo.")
    args = parser.parse_args(argv)

    supervisor = Supervisor(args.ready_timeout)
    supervisor.install_signal_handlers()

    host = os.environ.get("HOST") or "127.0.0.1"
    public_port = int(os.environ.get("PUBLIC_PORT") or 3000)
    admin_port = int(os.environ.get("ADMIN_PORT") or 3001)
    for name, variable, port in (("public", "PUBLIC_PORT", public_port),
                                 ("admin", "ADMIN_PORT", admin_port)):
        if not port_is_free(host, port):
            out.dev(f"port {port} on {host} is already in use, so the {name} API cannot start.")
            out.dev(f"Stop whatever holds it (another `make dev`?) or set {variable}=<free port>.")
            return 1
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    if ":" in probe_host:
        probe_host = f"[{probe_host}]"
    supervisor.public_base = f"http://{probe_host}:{public_port}"
    supervisor.admin_base = f"http://{probe_host}:{admin_port}"

    try:
        env = resolve_env()
    except Exception as exc:  # anything here is reported the same way
        out.dev(f"could not start the embedded PostgreSQL/Redis: {exc}")
        out.dev("Set DATABASE_URL and REDIS_URL to use running servers, or see the README's "
                "Troubleshooting section (EMBEDDED_REDIS_PORT, make stop-embedded).")
        return 1
    if supervisor.stop_requested.is_set():
        return 0

    steps = [Child("migrate", [PYTHON, "manage_admin.py", "migrate_locked"])]
    if not args.no_seed:
        steps.append(Child("seed", [PYTHON, "manage_admin.py", "seed_demo"]))
    for step in steps:
        code = supervisor.run_step(step, env)
        if code is None:
            out.dev("stopped.")
            return 0
        if code != 0:
            out.dev(f"'{' '.join(step.argv[1:])}' failed with exit code {code}; "
                    f"see the '{step.name} |' lines above.")
            return 1

    services = [
        Child("public", [PYTHON, "manage_public.py", "serve", "--no-migrate"]),
        Child("admin", [PYTHON, "manage_admin.py", "serve", "--no-migrate"]),
        Child("worker", [PYTHON, "manage_admin.py", "run_worker", "--no-migrate"]),
    ]
    ready_urls = [f"{supervisor.public_base}/health/ready", f"{supervisor.admin_base}/health/ready"]
    died = supervisor.supervise(services, env, ready_urls)
    if died is None:
        supervisor.stop_all()
        out.dev("all stopped.")
        return 0
    code = died.returncode
    out.dev(f"'{died.name}' ({' '.join(died.argv[1:])}) exited on its own with code {code}; "
            f"see the '{died.name} |' lines above. Stopping the others.")
    supervisor.stop_all()
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
