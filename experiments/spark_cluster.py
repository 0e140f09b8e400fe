"""A real Spark standalone cluster on 127.0.0.1: a master, two one-core workers and a Spark Connect server
against them, each a separate JVM started from PySpark's own launcher (`spark-class`, `spark-submit` in the
installed pyspark package), so the Spark engine runs on more than one JVM and through Spark Connect as
Databricks serverless would run it. The cluster tests (`tests/integration/test_spark_cluster.py`) and
`make bench-spark` start it, each with its executors' heap.

Every process is the caller's child, in a process group of its own, stopped at the end; their logs go to
the cluster's folder and are quoted when one does not come up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.find_spark_home import _find_spark_home

#: what the Connect server's application asks of the cluster: one core per executor (the heaps are the
#: cluster's fields)
SERVER_CONF = {
    "spark.executor.cores": "1",
    "spark.cores.max": "2",
    "spark.ui.enabled": "false",
    "spark.log.level": "ERROR",
    "spark.driver.host": "127.0.0.1",
    "spark.pyspark.python": sys.executable,
    "spark.connect.grpc.binding.address": "127.0.0.1",
}


def spark_home() -> Path:
    return Path(_find_spark_home())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A standalone master, its workers and a Connect server: `remote` is the URL a session connects to.
    The heaps default to the tests' small worlds; a benchmark's need more."""

    folder: Path
    #: each worker offers, and each executor takes, this much heap
    executor_memory: str = "768m"
    #: the Connect server's heap: it is the driver, where results gather before they cross to the client
    driver_memory: str = "1g"
    #: the largest result a job may gather on the driver (a feature table crosses whole)
    max_result_size: str = "64m"
    master_port: int = field(default_factory=free_port)
    master_ui: int = field(default_factory=free_port)
    connect_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def master(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def remote(self) -> str:
        return f"sc://127.0.0.1:{self.connect_port}"

    def env(self) -> dict[str, str]:
        """The JVMs' environment: this venv's Python on the executors, Retain importable, scratch and
        logs under the cluster's folder."""
        root = str(Path(__file__).resolve().parents[1])
        return {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_DIRS": str(self.folder / "scratch"),
            "SPARK_LOG_DIR": str(self.folder / "logs"),
            "SPARK_CONF_DIR": str(self.folder / "conf"),
        }

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        # the master and workers only keep books: a small heap; the Connect server is the driver
        env = self.env() if name == "connect" else {**self.env(), "SPARK_DAEMON_MEMORY": "256m"}
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def start(self, workers: int = 2) -> Cluster:
        """The master, `workers` workers (one core and `executor_memory` each) and the Connect server, each
        waited for."""
        for sub in ("scratch", "logs", "conf", "work"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        home = spark_home()
        spark_class = str(home / "bin" / "spark-class")
        deploy = "org.apache.spark.deploy"
        master = [spark_class, f"{deploy}.master.Master", "--host", "127.0.0.1"]
        self.spawn("master", [*master, "--port", str(self.master_port), "--webui-port", str(self.master_ui)])
        self.wait_for_port("master", self.master_port)
        for number in range(workers):
            self.start_worker(f"worker-{number}")
        self.wait_for(lambda: self.alive_workers() >= workers, f"{workers} workers registered")
        sized = {
            "spark.executor.memory": self.executor_memory,
            "spark.driver.memory": self.driver_memory,
            "spark.driver.maxResultSize": self.max_result_size,
            "spark.connect.grpc.binding.port": str(self.connect_port),
        }
        conf = [f"--conf={k}={v}" for k, v in {**SERVER_CONF, **sized}.items()]
        submit = [
            str(home / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
        ]
        self.spawn("connect", [*submit, "--name", "retain", "--master", self.master, *conf])
        self.wait_for_port("connect", self.connect_port, seconds=120)
        return self

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        command = [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker"]
        options = ["--host", "127.0.0.1", "--cores", "1", "--memory", self.executor_memory]
        options += ["--webui-port", str(free_port())]
        work = ["--work-dir", str(self.folder / "work" / name)]
        return self.spawn(name, [*command, self.master, *options, *work])

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui}/json/", timeout=5) as answer:
            state = json.load(answer)
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def wait_for_port(self, name: str, port: int, seconds: float = 60) -> None:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        self.wait_for(listening, f"the {name} listening on {port}", seconds)

    def wait_for(self, ready: object, what: str, seconds: float = 60) -> None:
        assert callable(ready)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.log_tail(name)}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}:\n" + "\n".join(map(self.log_tail, self.processes)))

    def log_tail(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> None:
        """Kill `name` at once (SIGKILL to its process group: the JVM and any executor it launched)."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)

    def stop(self) -> None:
        """Every process, the Connect server first, the master last; SIGKILL what lingers."""
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name in reversed(list(self.processes)):
            try:
                self.processes[name].wait(20)
            except subprocess.TimeoutExpired:
                self.kill(name)
