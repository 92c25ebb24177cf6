"""A Ray cluster of several nodes on this machine, for tests and benchmarks: a head and more nodes, each
`ray start --block` in its own process group with its own raylet, on unusual ports and a private temp
folder and token, so that it neither meets nor stops any other Ray on the machine. Node failure is a
raylet killed (`kill_node`)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
# Node death found in about 1.5 s instead of 15 s (GCS health checks every 0.5 s, 3 misses).
FAST_FAILURE = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "1000",
                "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "1000"}


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LocalCluster:
    """`ray start --head` and `ray start --address` again: nodes of `cpus` CPUs each on 127.0.0.1."""

    def __init__(self, root: Path, nodes: int = 2, cpus: int = 1, env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        token = self.root / "auth_token"
        token.write_text(uuid.uuid4().hex)
        token.chmod(0o600)
        self.env = {**os.environ, **FAST_FAILURE, **(env or {}), "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
        self.env.pop("RAY_ADDRESS", None)
        self.base = self._ports()
        import ray

        self.address = f"{ray.util.get_node_ip_address()}:{self.base}"
        self.procs: list[subprocess.Popen] = []
        self.node_ids: list[str] = []
        self.cpus = cpus
        self.temp = tempfile.mkdtemp(prefix="ve-ray-")  # short: Ray's socket paths must stay under 108 bytes
        try:
            for _ in range(nodes):
                self.add_node()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _ports() -> int:
        """A base port with 100 free ports above it (the head's GCS port; the rest for the nodes)."""
        rng = random.Random()
        for _ in range(50):
            base = rng.randrange(41000, 59000, 100)
            if all(_free(base + k) for k in (0, 1, *range(10, 16), *range(20, 26), *range(30, 36))):
                return base
        raise RuntimeError("no free port range for a test Ray cluster")

    def add_node(self) -> str:
        """Start one more node (the first is the head); returns its node id."""
        self.procs.append(None)
        self.node_ids.append("")
        return self._start(len(self.procs) - 1)

    def restart_node(self, i: int) -> str:
        """Node i (not the head) again, on the same ports, as a new Ray node, after what is left of the old one
        (its `ray start` and any worker that outlived the raylet) is killed; returns the new node id."""
        self._kill(self._tree(i))
        return self._start(i)

    def _start(self, i: int) -> str:
        cpus = self.cpus
        b, o = self.base, 10 * (i + 1)
        ports = ["--node-manager-port", str(b + o), "--object-manager-port", str(b + o + 1),
                 "--dashboard-agent-listen-port", str(b + o + 2), "--dashboard-agent-grpc-port", str(b + o + 3),
                 "--runtime-env-agent-port", str(b + o + 4), "--metrics-export-port", str(b + o + 5),
                 "--min-worker-port", str(b + 100 + 100 * i), "--max-worker-port", str(b + 199 + 100 * i)]
        head = ["--head", "--port", str(b), "--ray-client-server-port", str(b + 1), "--include-dashboard", "false",
                "--temp-dir", self.temp] if i == 0 else ["--address", self.address]
        log = open(self.root / f"node{i}.log", "ab")
        before = set(self.alive_nodes()) if i else set()
        self.procs[i] = (subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--num-cpus", str(cpus), "--object-store-memory", str(300 << 20),
             "--disable-usage-stats", *head, *ports], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"ray start (node {i}) exited:\n" + (self.root / f"node{i}.log").read_text()[-3000:])
            new = [n for n in self.alive_nodes() if n not in before]
            if new:
                self.node_ids[i] = new[0]
                return new[0]
            time.sleep(0.5)
        raise RuntimeError(f"node {i} did not join:\n" + (self.root / f"node{i}.log").read_text()[-3000:])

    def alive_nodes(self) -> list[str]:
        """Ids of the alive nodes, asked of the GCS in another process (this one stays no driver)."""
        res = subprocess.run([str(BIN / "python"), "-c", _LIST, self.address], env=self.env, capture_output=True,
                             text=True, timeout=60)
        return res.stdout.split() if res.returncode == 0 else []

    def raylet_pid(self, i: int) -> int:
        import psutil

        for p in psutil.Process(self.procs[i].pid).children(recursive=True):
            if p.name() == "raylet":
                return p.pid
        raise RuntimeError(f"node {i} has no raylet")

    def kill_node(self, i: int) -> None:
        """SIGKILL node i's raylet (its workers follow it)."""
        os.kill(self.raylet_pid(i), signal.SIGKILL)

    def stop(self) -> None:
        """Every process these `ray start`s made, by process group and by descent; nothing else. SIGKILL, all
        nodes at once: a throwaway cluster has nothing to flush (its files are in a private temp folder, removed
        here), and Ray's daemons take over 10 s each to act on SIGTERM."""
        self._kill([q for i in range(len(self.procs)) for q in self._tree(i)])
        self.procs = []
        shutil.rmtree(self.temp, ignore_errors=True)

    def _tree(self, i: int) -> list:
        """Node i's `ray start` and every process under it or in its session (its raylet, workers, agents;
        a worker whose raylet died is no one's child any more, but stays in the session started for it)."""
        import psutil

        p = self.procs[i]
        if p is None:
            return []
        mine = {p.pid} if p.poll() is None else set()
        try:
            mine |= {q.pid for q in psutil.Process(p.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
        for q in psutil.process_iter():
            try:
                if os.getsid(q.pid) == p.pid:
                    mine.add(q.pid)
            except (ProcessLookupError, PermissionError):
                pass
        out = []
        for pid in mine:
            try:
                out.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        return out

    def _kill(self, procs: list) -> None:
        """SIGKILL these processes and reap the `ray start`s among them."""
        import psutil

        for q in procs:
            try:
                q.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        pids = {q.pid for q in procs}
        for p in self.procs:
            if p is not None and (p.pid in pids or p.poll() is not None):
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass


_LIST = ("import sys; from ray._raylet import GcsClient; "
         "nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10).values(); "
         "print(' '.join(i.node_id.hex() for i in nodes if i.state == 0))")
