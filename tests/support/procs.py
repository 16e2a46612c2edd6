"""Real processes for tests: the jaif CLI, `jaif serve`, the stand-in upstream server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

JAIF = str(Path(sys.executable).parent / "jaif")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jaif(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the jaif CLI as users do; returns the completed process (stdout, stderr as text)."""
    result = subprocess.run([JAIF, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"jaif {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1].strip()


def wait_http(url: str, *, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered:\n{out}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def started(
    argv: list[str], env: dict[str, str], health_url: str, *, timeout: float = 60.0
) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(health_url, timeout=timeout, proc=proc)
        yield proc
    finally:
        stop(proc)


@contextmanager
def upstream(env: dict[str, str], *extra: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """The stand-in OpenAI-compatible server on a free port; yields its /v1 URL and the process."""
    port = free_port()
    argv = [sys.executable, "-m", "jaif.testing.upstream", "--port", str(port), *extra]
    with started(argv, env, f"http://127.0.0.1:{port}/v1/models") as proc:
        yield f"http://127.0.0.1:{port}/v1", proc


@contextmanager
def server(env: dict[str, str], *extra: str, timeout: float = 120.0) -> Iterator[str]:
    """`jaif serve` on a free port; yields its base URL (without /v1)."""
    port = free_port()
    with started(
        [JAIF, "serve", "--port", str(port), *extra], env, f"http://127.0.0.1:{port}/healthz", timeout=timeout
    ):
        yield f"http://127.0.0.1:{port}"


def wait_for(read, done, *, timeout: float = 10.0, every: float = 0.1):
    """Call read() until done(value) holds or the timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(every)
        value = read()
    return value


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAIF_")}
    env.update(overrides)
    return env
