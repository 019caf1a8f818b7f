"""The several-hosts benchmark's hosts: network namespaces that reach the bridge from their own
address, die whole, show their calls in flight, and leave nothing behind (needs root)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from benchmarks.netns import NAME_PREFIX, Host, network, remove_stale
from giftsync.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

IP = "/usr/sbin/ip"


def _ours(tag: str) -> list[str]:
    """Namespaces and links whose name starts with ``tag``."""
    names = [line.split()[0] for line in _out(IP, "netns", "list").splitlines() if line.split()]
    for line in _out(IP, "-o", "link", "show").splitlines():
        names.append(line.split(":")[1].strip().split("@")[0])
    return [n for n in names if n.startswith(tag)]


def _out(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def _in_host(host: Host, code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*host.wrapper(), sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_each_host_reaches_the_bridge_from_its_own_address_and_nothing_is_left() -> None:
    tag = f"{NAME_PREFIX}{os.getpid()}"
    with network(2) as net:
        assert [h.address.rsplit(".", 1)[1] for h in net.hosts] == ["11", "12"]
        with socket.socket() as listener:
            listener.bind((net.gateway, 0))
            listener.listen(4)
            port = listener.getsockname()[1]
            code = (
                "import socket\n"
                f"s = socket.create_connection(({net.gateway!r}, {port}), timeout=10)\n"
                "print(s.getsockname()[0])\n"
            )
            for host in net.hosts:
                child = _in_host(host, code)
                conn, peer = listener.accept()
                conn.close()
                out, _ = child.communicate(timeout=30)
                assert peer[0] == host.address == out.strip()
        assert len(_ours(tag)) == 2 + 2 + 1  # two namespaces, two veths, the bridge
    wait_for(lambda: not _ours(tag), timeout=30, what="the namespaces and links removed")


def test_an_error_inside_still_removes_everything() -> None:
    tag = f"{NAME_PREFIX}{os.getpid()}"
    with pytest.raises(RuntimeError, match="inside"), network(1):
        raise RuntimeError("inside")
    wait_for(lambda: not _ours(tag), timeout=30, what="the namespaces and links removed")


def test_a_crashed_runs_leftovers_are_removed_and_a_live_runs_are_not() -> None:
    dead = f"{NAME_PREFIX}{_dead_pid()}"
    live = f"{NAME_PREFIX}{os.getppid()}"
    try:
        for tag in (dead, live):
            _out(IP, "netns", "add", f"{tag}-1")
            _out(IP, "link", "add", f"{tag}b", "type", "bridge")
        removed = remove_stale(IP)
        assert set(removed) >= {f"{dead}-1", f"{dead}b"}
        assert not any(name.startswith(live) for name in removed)
        wait_for(lambda: not _ours(dead), timeout=30, what="the dead run's leftovers removed")
        assert sorted(_ours(live)) == [f"{live}-1", f"{live}b"]
    finally:
        subprocess.run([IP, "netns", "del", f"{live}-1"], check=False)
        subprocess.run([IP, "link", "del", f"{live}b"], check=False)


def test_kill_ends_every_process_of_the_host_and_only_those() -> None:
    with network(2) as net:
        doomed, spared = net.hosts
        sleepers = [_in_host(doomed, "import time; time.sleep(120)") for _ in range(3)]
        other = _in_host(spared, "import time; time.sleep(120)")
        wait_for(lambda: len(doomed.pids()) >= 3, timeout=30, what="the sleepers started")
        assert doomed.kill() == 3
        assert all(proc.wait(timeout=10) == -9 for proc in sleepers)
        assert other.poll() is None and spared.pids() == [other.pid]
        other.kill()
        other.wait()


def test_a_call_waiting_for_its_answer_shows_until_it_is_answered() -> None:
    with network(1) as net:
        host = net.hosts[0]
        with socket.socket() as listener:
            listener.bind((net.gateway, 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            # Each line on stdin makes the client ask once; it says when the answer came.
            code = (
                "import socket, sys\n"
                f"s = socket.create_connection(({net.gateway!r}, {port}), timeout=30)\n"
                "for _ in sys.stdin:\n"
                "    s.sendall(b'ask')\n"
                "    print(s.recv(16).decode(), flush=True)\n"
            )
            child = subprocess.Popen(
                [*host.wrapper(), sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdin is not None and child.stdout is not None
            conn, _ = listener.accept()
            with conn:
                # A fresh connection's first send may fall in the kernel tick of its
                # handshake, so its timers cannot tell: the first exchange only opens it.
                child.stdin.write("\n")
                child.stdin.flush()
                assert conn.recv(16) == b"ask"
                conn.sendall(b"answer")
                assert child.stdout.readline() == "answer\n"
                assert host.calls_awaiting_answer(net.gateway, port) == 0
                child.stdin.write("\n")
                child.stdin.flush()
                assert conn.recv(16) == b"ask"
                wait_for(
                    lambda: host.calls_awaiting_answer(net.gateway, port) == 1,
                    timeout=10,
                    what="the question to show as waiting",
                )
                assert host.calls_awaiting_answer(net.gateway, port + 1) == 0
                conn.sendall(b"answer")
                assert child.stdout.readline() == "answer\n"
                assert host.calls_awaiting_answer(net.gateway, port) == 0
                child.stdin.close()
            assert child.wait(timeout=30) == 0
