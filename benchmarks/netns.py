"""Several "hosts" on one machine: network namespaces joined by veth pairs to a bridge.

Each host is a network namespace with loopback and one interface on a /24 whose gateway is
a bridge in the root namespace; Redis and the sandbox listen on the bridge's address, and a
worker started with :meth:`Host.wrapper` (``ip netns exec NS``) reaches them only over its
veth pair, as a worker on another machine would over the network. :meth:`Host.kill` is a
host dying: every process in its namespace gets SIGKILL at once.

It needs root (``ip netns add``). Names carry the creating process's id (``gsh<pid>-1`` for
a namespace, ``gsh<pid>b`` for the bridge), so a run never collides with a leftover of a
crashed one; leftovers whose creator is gone are removed at the start of the next run.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from giftsync.waiting import wait_for

NAME_PREFIX = "gsh"
# Subnets tried in turn: 10.77.0.0/24 unless an earlier run on this machine still holds it.
SUBNETS = tuple(f"10.77.{n}.0/24" for n in range(256))
_OURS = re.compile(rf"^{NAME_PREFIX}(\d+)(?:-\d+|b|v\d+)$")


class HostsUnavailable(RuntimeError):
    """The namespaces could not be made or do not reach the bridge (not root, no ``ip``...)."""


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        (
            p
            for p in (f"/usr/sbin/{name}", f"/sbin/{name}", f"/usr/bin/{name}")
            if os.access(p, os.X_OK)
        ),
        None,
    )
    if found is None:
        raise HostsUnavailable(f"no `{name}` command on this machine")
    return found


def _run(*args: str) -> str:
    """Run a command; its stdout, or HostsUnavailable with its stderr."""
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise HostsUnavailable(f"`{' '.join(args)}` failed: {done.stderr.strip()[:300]}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def awaiting_answer(ss_output: str) -> int:
    """Connections in ``ss -tni`` output whose last send is more recent than their last
    receive: ``lastsnd`` < ``lastrcv``, both in ms ago (ss leaves out a timer that is 0).

    The timers tick with the kernel's clock, so a request sent in the same tick as the
    connection's handshake or its previous answer does not show: a reader that must see
    one polls (kept-alive connections, as httpx's, show every later request)."""
    waiting = 0
    for line in ss_output.splitlines():
        sent = re.search(r"\blastsnd:(\d+)", line)
        received = re.search(r"\blastrcv:(\d+)", line)
        if int(sent.group(1) if sent else 0) < int(received.group(1) if received else 0):
            waiting += 1
    return waiting


@dataclass(frozen=True)
class Host:
    """One namespace: its name and its address on the bridge's subnet."""

    name: str
    address: str
    ip: str

    def wrapper(self) -> list[str]:
        """The command prefix that runs a command inside this host."""
        return [self.ip, "netns", "exec", self.name]

    def pids(self) -> list[int]:
        """Every process running in this host."""
        return [int(p) for p in _run(self.ip, "netns", "pids", self.name).split()]

    def kill(self) -> int:
        """SIGKILL every process of this host at once and wait until none is left; how many
        there were."""
        killed: set[int] = set()

        def gone() -> bool:
            pids = self.pids()
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(pids)
            return not pids

        wait_for(gone, timeout=30, interval=0.02, what=f"every process of {self.name} gone")
        return len(killed)

    def calls_awaiting_answer(self, address: str, port: int) -> int:
        """TCP connections from this host to ``address:port`` that sent since they last
        received: requests still waiting for their answer (the kernel's per-socket timers)."""
        out = _run(
            _tool("ss"),
            "-N",
            self.name,
            "-tniH",
            "state",
            "established",
            "dst",
            f"{address}:{port}",
        )
        return awaiting_answer(out)


@dataclass(frozen=True)
class Network:
    """The bridge (its address is the one servers listen on) and the hosts behind it."""

    bridge: str
    gateway: str
    hosts: list[Host]


def remove_stale(ip: str) -> list[str]:
    """Remove namespaces, bridges and veths of earlier runs whose process is gone."""
    removed = []
    for line in _run(ip, "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = _OURS.match(name)
        if match and not _alive(int(match.group(1))):
            _run(ip, "netns", "del", name)
            removed.append(name)
    for line in _run(ip, "-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        match = _OURS.match(name)
        if match and not _alive(int(match.group(1))):
            with suppress(HostsUnavailable):
                _run(ip, "link", "del", name)
                removed.append(name)
    return removed


def _free_subnet(ip: str) -> ipaddress.IPv4Network:
    used = [
        ipaddress.ip_interface(m)
        for m in re.findall(r"\binet (\S+)", _run(ip, "-4", "-o", "addr", "show"))
    ]
    for text in SUBNETS:
        net = ipaddress.IPv4Network(text)
        if not any(i.ip in net or net.overlaps(i.network) for i in used):
            return net
    raise HostsUnavailable("every 10.77.N.0/24 subnet is in use on this machine")


def _check_reach(hosts: list[Host], gateway: str) -> None:
    """Every host opens a TCP connection to a listener on the bridge's address."""
    with socket.socket() as listener:
        listener.bind((gateway, 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        probe = (
            "import socket, sys, time\n"
            "deadline = time.monotonic() + 10\n"
            "while True:\n"
            "    try:\n"
            f"        socket.create_connection(({gateway!r}, {port}), timeout=2).close()\n"
            "        break\n"
            "    except OSError:\n"
            "        if time.monotonic() > deadline: raise\n"
            "        time.sleep(0.1)\n"
        )
        for host in hosts:
            done = subprocess.run(
                [*host.wrapper(), sys.executable, "-c", probe],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            if done.returncode != 0:
                raise HostsUnavailable(
                    f"{host.name} ({host.address}) cannot reach {gateway}:{port}: "
                    f"{done.stderr.strip().splitlines()[-1:] or done.returncode}"
                )


@contextmanager
def network(count: int) -> Iterator[Network]:
    """``count`` hosts behind a fresh bridge, checked to reach it; all removed afterwards,
    whatever happened. Raises HostsUnavailable when they cannot be made."""
    if os.geteuid() != 0:
        raise HostsUnavailable("network namespaces need root (ip netns add)")
    ip = _tool("ip")
    remove_stale(ip)
    tag = f"{NAME_PREFIX}{os.getpid()}"
    bridge = f"{tag}b"
    made_bridge = False
    hosts: list[Host] = []
    try:
        subnet = _free_subnet(ip)
        addresses = list(subnet.hosts())
        gateway = str(addresses[0])
        _run(ip, "link", "add", bridge, "type", "bridge")
        made_bridge = True
        _run(ip, "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
        _run(ip, "link", "set", bridge, "up")
        for n in range(1, count + 1):
            host = Host(f"{tag}-{n}", str(addresses[9 + n]), ip)
            veth = f"{tag}v{n}"
            _run(ip, "netns", "add", host.name)
            hosts.append(host)
            _run(
                ip, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.name
            )
            _run(ip, "link", "set", veth, "master", bridge)
            _run(ip, "link", "set", veth, "up")
            _run(
                ip,
                "-n",
                host.name,
                "addr",
                "add",
                f"{host.address}/{subnet.prefixlen}",
                "dev",
                "eth0",
            )
            _run(ip, "-n", host.name, "link", "set", "eth0", "up")
            _run(ip, "-n", host.name, "link", "set", "lo", "up")
        _check_reach(hosts, gateway)
        yield Network(bridge, gateway, hosts)
    finally:
        for host in hosts:
            with suppress(HostsUnavailable, TimeoutError):
                host.kill()
            # Deleting the namespace deletes its end of the veth pair, and so both ends.
            with suppress(HostsUnavailable):
                _run(ip, "netns", "del", host.name)
        if made_bridge:
            with suppress(HostsUnavailable):
                _run(ip, "link", "del", bridge)
