# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Real NAT routers in network namespaces, for tests/test_netns.py (root only).

`Topology` builds, inside namespaces whose names start with a per-run prefix
(``qt<pid>``), the testbed of ``netns-testbed.md``::

                       <p>sw: bridge br0 (no IP) = "the internet"
           +-------------------+-------------------+
     <p>pub eth0          <p>n1 wan0           <p>n2 wan0
     10.99.0.1, .2        10.99.0.11           10.99.0.12
     (observers, STUN)    lan0 192.168.1.1     lan0 192.168.2.1
                               |                    |
                          <p>a eth0            <p>b eth0
                          192.168.1.10         192.168.2.10  (default via .1)

Router n1 is a cone NAT (nft ``masquerade``: endpoint-independent mapping),
n2 a symmetric one (``masquerade random``); ``nats`` chooses otherwise.
Every link is a veth pair made inside the namespaces (nothing appears in the
root namespace).  Processes started with `Topology.spawn` run under
``timeout`` and are killed by PID; `Topology.close` (always called: it is a
context manager) kills them and whatever else runs in the namespaces, then
deletes the namespaces.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import time
import weakref
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

ROUTER_RULES = """
table inet qt {{
    chain input {{ type filter hook input priority filter; policy accept;
        iifname "wan0" ct state established,related accept
        iifname "wan0" udp dport 1900 drop
        iifname "wan0" drop
    }}
    chain forward {{ type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
        jump miniupnpd
    }}
    chain miniupnpd {{ }}
    chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;
        jump prerouting_miniupnpd
    }}
    chain prerouting_miniupnpd {{ }}
    chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;
        jump postrouting_miniupnpd
        oifname "wan0" masquerade{random}
    }}
    chain postrouting_miniupnpd {{ }}
}}
"""

MINIUPNPD_CONF = """ext_ifname=wan0
listening_ip=lan0
http_port=5555
ext_perform_stun=yes
ext_stun_host=10.99.0.1
ext_stun_port=3478
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
ipv6_disable=yes
lease_file={state}/upnp.leases
upnp_table_name=qt
upnp_nat_table_name=qt
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
uuid=3f1e6a2c-7b6d-4c1e-9a55-0123456789ab
allow 1024-65535 192.168.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
"""


def missing_tools() -> str | None:
    """Why namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nft)"
    for tool in ("ip", "nft", "timeout"):
        if shutil.which(tool) is None:
            return f"needs {tool!r} (apt-get install iproute2 nftables)"
    probe = f"qtprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def miniupnpd() -> str | None:
    """The miniupnpd binary, if installed."""
    return shutil.which("miniupnpd") or (
        "/usr/sbin/miniupnpd" if os.path.exists("/usr/sbin/miniupnpd") else None
    )


class Topology:
    """The namespaces, links, routers and processes of one test module."""

    _made = 0

    def __init__(self, state_dir: str, nats: tuple[str, str] = ("cone", "symmetric")) -> None:
        """``nats``: the kinds of routers n1 and n2, ``"cone"`` or ``"symmetric"``."""
        if not set(nats) <= {"cone", "symmetric"}:
            raise ValueError(f"nats: {nats!r}: each must be 'cone' or 'symmetric'")
        Topology._made += 1
        self.prefix = f"qt{os.getpid() % 100000}x{Topology._made}"
        self.state = state_dir
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.nats = nats

    def ns(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # ----------------------------------------------------------- building
    def run(self, *argv: str, ns: str | None = None, stdin: str | None = None) -> str:
        cmd = list(argv) if ns is None else ["ip", "netns", "exec", self.ns(ns), *argv]
        done = subprocess.run(
            ["timeout", "20", *cmd],
            input=None if stdin is None else stdin.encode(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{cmd}: exit {done.returncode}: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def _add_ns(self, name: str) -> None:
        self.run("ip", "netns", "add", self.ns(name))
        self.namespaces.append(self.ns(name))
        self.run("ip", "-n", self.ns(name), "link", "set", "lo", "up")

    def _link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        self.run(
            "ip", "-n", self.ns(a), "link", "add", a_if, "type", "veth",
            "peer", "name", b_if, "netns", self.ns(b),
        )  # fmt: skip
        self.run("ip", "-n", self.ns(a), "link", "set", a_if, "up")
        self.run("ip", "-n", self.ns(b), "link", "set", b_if, "up")

    def _addr(self, name: str, iface: str, cidr: str) -> None:
        self.run("ip", "-n", self.ns(name), "addr", "add", cidr, "dev", iface)

    def build(self) -> None:
        for name in ("sw", "pub", "n1", "n2", "a", "b"):
            self._add_ns(name)
        self.run("ip", "-n", self.ns("sw"), "link", "add", "br0", "type", "bridge")
        self.run("ip", "-n", self.ns("sw"), "link", "set", "br0", "up")
        for i, (name, ips) in enumerate(
            [("pub", ["10.99.0.1/24", "10.99.0.2/24"]), ("n1", ["10.99.0.11/24"]),
             ("n2", ["10.99.0.12/24"])]
        ):  # fmt: skip
            iface = "eth0" if name == "pub" else "wan0"
            self._link("sw", f"p{i}", name, iface)
            self.run("ip", "-n", self.ns("sw"), "link", "set", f"p{i}", "master", "br0")
            for ip in ips:
                self._addr(name, iface, ip)
        for router, host, net, nat in (
            ("n1", "a", "1", self.nats[0]),
            ("n2", "b", "2", self.nats[1]),
        ):
            random = " random" if nat == "symmetric" else ""
            self._link(router, "lan0", host, "eth0")
            self._addr(router, "lan0", f"192.168.{net}.1/24")
            self._addr(host, "eth0", f"192.168.{net}.10/24")
            self.run(
                "ip", "-n", self.ns(host), "route", "add", "default", "via", f"192.168.{net}.1"
            )
            self.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", ns=router)
            self.run("nft", "-f", "-", ns=router, stdin=ROUTER_RULES.format(random=random))

    # ---------------------------------------------------------- processes
    def spawn(self, ns: str, *argv: str, limit: float = 120) -> subprocess.Popen[bytes]:
        """Start ``argv`` in namespace ``ns`` (killed after ``limit`` s at the latest)."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(ns), "timeout", str(int(limit)), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        for ns in self.namespaces:
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, check=False
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()


@contextlib.contextmanager
def topology(state_dir: str, nats: tuple[str, str] = ("cone", "symmetric")) -> Iterator[Topology]:
    """A built `Topology`, removed on exit whatever happens."""
    topo = Topology(state_dir, nats)
    try:
        topo.build()
        yield topo
    finally:
        topo.close()


# Bytes read past a returned line, by pipe.
_pending: weakref.WeakKeyDictionary[IO[bytes], bytes] = weakref.WeakKeyDictionary()


def read_line(
    proc: subprocess.Popen[bytes], want: str, limit: float, *, stderr: bool = False
) -> str:
    """The next line of ``proc``'s output containing ``want`` (within ``limit`` s)."""
    pipe = proc.stderr if stderr else proc.stdout
    assert pipe is not None
    fd = pipe.fileno()
    deadline = time.monotonic() + limit
    seen: list[str] = []
    buffer = _pending.pop(pipe, b"")
    while True:  # bounded by the deadline
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode(errors="replace")
            seen.append(text)
            if want in text:
                _pending[pipe] = buffer
                return text
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([pipe], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
    raise AssertionError(f"no line with {want!r} within {limit} s; saw: {seen[-20:]}")


STUN_SERVER = r"""
import socket, struct, sys, select, time
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((ip, port))
print("stun ready", flush=True)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    if not select.select([s], [], [], 0.5)[0]:
        continue
    data, (rip, rport) = s.recvfrom(2048)
    if len(data) < 20 or data[:2] != b"\x00\x01":
        continue
    cookie = 0x2112A442
    xport = rport ^ (cookie >> 16)
    xip = struct.unpack(">I", socket.inet_aton(rip))[0] ^ cookie
    attr = struct.pack(">HHBBHI", 0x0020, 8, 0, 1, xport, xip)
    s.sendto(struct.pack(">HH", 0x0101, len(attr)) + data[4:20] + attr, (rip, rport))
"""
"""A minimal STUN Binding server: miniupnpd's check that its WAN address is
usable (every answer from the address asked: "unrestricted", as a router
with a public address is)."""
