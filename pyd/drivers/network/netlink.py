"""Bridges, veth pairs and network namespaces over rtnetlink (layer: drivers).

Every method here blocks (netlink round trips, mounts): the engine calls them through its io
L{pyd.core.seams.Blocking}. Network namespaces are plain files bind-mounted from
C{/proc/thread-self/ns/net}; we enter them with C{setns(2)} on the calling thread only and always
switch back, so no pool thread is ever left in a container's namespace and nothing forks.

The driver holds no Docker rules: it creates and deletes what it is told to. The sysctls it
writes are per-interface ones on bridges it created (C{route_localnet}, C{forwarding}) and, when
asked (dockerd's ip-forward), the namespace's IPv4 and IPv6 forwarding switches.

IPv6 addresses are added with C{IFA_F_NODAD} (as libnetwork does): the addresses are handed out by
pyd's IPAM, so duplicate address detection would only delay the first packets by a second.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from pyd.drivers.network.rtnl import BR_STATE_FORWARDING, Rtnl, RtnlError

CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_LIBC: list[Any] = []


def _lib() -> Any:
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True))
    return _LIBC[0]


def _check(rc: int, what: str, path: str = "") -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


class NetworkDriverError(Exception):
    """A netlink or namespace operation failed; the message says which and why."""


@attrs.frozen
class LinkInfo:
    """One host interface as the driver lists it."""

    index: int
    name: str
    kind: str  # "bridge", "veth", "" ...
    master: int  # index of the bridge it is enslaved to, 0 if none


@attrs.frozen
class Interface:
    """What to put into a container namespace: one veth end on a bridge."""

    bridge: str
    host_ifname: str
    ifname: str  # name inside the namespace ("eth0", "eth1"...)
    address: str  # "" for none (an IPv6-only network)
    prefixlen: int
    mac: str
    gateway: str | None  # default route via this address, None for no route out
    mtu: int = 1500
    address6: str = ""  # the IPv6 address on a dual-stack network ("" for none)
    prefixlen6: int = 0
    gateway6: str | None = None  # IPv6 default route via this address
    # more addresses of the interface (dockerd's link-local IPs): (address, prefix length)
    extra: tuple[tuple[str, int], ...] = ()


@contextlib.contextmanager
def _in_netns(path: str) -> Iterator[None]:
    """Switch the calling thread into the namespace at C{path} and back again."""
    libc = _lib()
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(libc.setns(fd, CLONE_NEWNET), "setns", path)
        finally:
            os.close(fd)
        try:
            yield
        finally:
            # Failing to return would leave a pool thread inside a container: make it loud.
            if libc.setns(orig, CLONE_NEWNET) != 0:  # pragma: no cover - kernel refused
                os.abort()
    finally:
        os.close(orig)


_LOOPBACK_IFINDEX = 1


def _bound(kind: int, address: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            if not port:
                raise
            s.bind((address, 0))
    except OSError:
        s.close()
        raise
    return s


def _ensure_addr(
    host: Rtnl, idx: int, name: str, address: str, prefixlen: int, family: int
) -> None:
    want = (str(ipaddress.ip_address(address)), prefixlen)
    if want in host.addresses(idx, family):
        return
    try:
        host.add_address(idx, address, prefixlen, IFA_F_NODAD if family == socket.AF_INET6 else 0)
    except RtnlError as e:
        if e.code != errno.EEXIST:
            raise NetworkDriverError(f"adding {address}/{prefixlen} to {name}: {e}") from e


def _rtnl_in(path: str) -> Rtnl:
    """An L{Rtnl} whose socket lives in the namespace at C{path}."""
    with _in_netns(path):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    return Rtnl(sock)


class NetlinkDriver:
    """Host-side and namespace-side netlink operations (blocking; call through the io pool)."""

    def __init__(self, proc_sys: str = "/proc/sys") -> None:
        self._proc_sys = proc_sys
        # Namespaces are made from several io threads at once: the first ones must not each
        # bind the directory onto itself (see _make_shared).
        self._sharing = threading.Lock()

    # -- host interfaces -------------------------------------------------------------------

    def links(self) -> list[LinkInfo]:
        """Every interface of the host namespace."""
        with Rtnl() as host:
            return [
                LinkInfo(index=link.index, name=link.name, kind=link.kind, master=link.master)
                for link in host.links()
            ]

    def link_exists(self, name: str) -> bool:
        """Whether a host interface called C{name} exists."""
        with Rtnl() as host:
            return host.link(name) is not None

    def ensure_bridge(
        self,
        name: str,
        gateway: str | None,
        prefixlen: int,
        mtu: int,
        gateway6: str | None = None,
        prefixlen6: int = 0,
    ) -> bool:
        """Create the bridge if missing, give it C{gateway/prefixlen} (and C{gateway6/prefixlen6}
        on a dual-stack network), bring it up.

        Sets C{route_localnet=1} (DNAT from 127.0.0.1 needs it) and C{forwarding=1} on this bridge
        only. @return: whether the bridge was created now.
        """
        created = False
        with Rtnl() as host:
            found = host.link(name)
            if found is None:
                try:
                    host.add_bridge(name)
                except RtnlError as e:
                    if e.code != errno.EEXIST:
                        raise NetworkDriverError(f"creating bridge {name}: {e}") from e
                created = True
                found = host.link(name)
                if found is None:
                    raise NetworkDriverError(f"creating bridge {name}: it vanished")
            idx = found.index
            if mtu and mtu != 1500:
                host.set_link(idx, mtu=mtu)
            if gateway:
                _ensure_addr(host, idx, name, gateway, prefixlen, socket.AF_INET)
            if gateway6:
                self._sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0")
                _ensure_addr(host, idx, name, gateway6, prefixlen6, socket.AF_INET6)
            host.set_link(idx, up=True)
        self._sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
        self._sysctl(f"net/ipv4/conf/{name}/forwarding", "1")
        return created

    def delete_link(self, name: str) -> bool:
        """Delete a host interface if it exists. @return: whether it existed."""
        with Rtnl() as host:
            try:
                return host.delete_named(name)
            except RtnlError as e:
                raise NetworkDriverError(f"deleting {name}: {e}") from e

    def routes(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The host's IPv4 and IPv6 routes (destinations), for picking subnets that do not
        collide."""
        out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        with Rtnl() as host:
            for family in (socket.AF_INET, socket.AF_INET6):
                for dst, dst_len, table in host.routes(family):
                    if table != 254:  # main table only
                        continue
                    if dst is None:
                        continue  # the default route collides with nothing
                    out.append(ipaddress.ip_network(f"{dst}/{dst_len}", strict=False))
        return out

    def enable_ip_forwarding(self) -> bool:
        """Turn on C{net.ipv4.ip_forward} in this network namespace, as dockerd's ip-forward does.

        @return: whether it was off (and is now on).
        """
        path = os.path.join(self._proc_sys, "net/ipv4/ip_forward")
        try:
            with open(path) as f:
                if f.read().strip() == "1":
                    return False
        except OSError as e:
            raise NetworkDriverError(f"reading {path}: {e}") from e
        self._sysctl("net/ipv4/ip_forward", "1")
        return True

    def enable_ipv6_forwarding(self) -> bool:
        """Turn on C{net.ipv6.conf.all.forwarding} (and C{default}) in this network namespace,
        as dockerd's ip-forward does once a network has IPv6.

        @return: whether it was off (and is now on).
        """
        path = os.path.join(self._proc_sys, "net/ipv6/conf/all/forwarding")
        try:
            with open(path) as f:
                if f.read().strip() == "1":
                    return False
        except OSError as e:
            raise NetworkDriverError(f"reading {path}: {e}") from e
        self._sysctl("net/ipv6/conf/default/forwarding", "1")
        self._sysctl("net/ipv6/conf/all/forwarding", "1")
        return True

    def _sysctl(self, key: str, value: str) -> None:
        path = os.path.join(self._proc_sys, key)
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise NetworkDriverError(f"writing {path}: {e}") from e

    # -- namespaces ------------------------------------------------------------------------

    def create_netns(self, path: str) -> None:
        """Create a new network namespace pinned at C{path} (a bind mount), with C{lo} up.

        The directory is made a shared mount point (as iproute2 does for /run/netns) so that
        unmounting releases the namespace in every mount namespace.
        """
        libc = _lib()
        d = os.path.dirname(path)
        os.makedirs(d, mode=0o711, exist_ok=True)
        with self._sharing:
            self._make_shared(d)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
        os.close(fd)
        orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                _check(libc.unshare(CLONE_NEWNET), "unshare", path)
                try:
                    _check(
                        libc.mount(
                            b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None
                        ),
                        "mount",
                        path,
                    )
                finally:
                    if libc.setns(orig, CLONE_NEWNET) != 0:  # pragma: no cover
                        os.abort()
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
        finally:
            os.close(orig)
        with _rtnl_in(path) as ns:
            # a new namespace's loopback is always its interface 1 (the kernel's
            # LOOPBACK_IFINDEX): no dump to find it
            ns.set_link(_LOOPBACK_IFINDEX, up=True)

    def _make_shared(self, d: str) -> None:
        libc = _lib()
        if libc.mount(b"", d.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
            return
        _check(libc.mount(d.encode(), d.encode(), b"none", MS_BIND | MS_REC, None), "bind", d)
        _check(libc.mount(b"", d.encode(), b"none", MS_SHARED | MS_REC, None), "share", d)

    def remove_netns(self, path: str) -> bool:
        """Unmount and delete the namespace file (its interfaces go with it). Idempotent."""
        if not os.path.lexists(path):
            return False
        _lib().umount2(path.encode(), MNT_DETACH)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True

    def release_netns(self, path: str, host_ifnames: Sequence[str]) -> None:
        """Cut a stopped container off its bridges and unpin its namespace, without waiting
        for the veth pairs to be destroyed.

        Deleting a veth waits for the kernel's RCU grace periods (~30 ms here, on the path of
        every stop and `run --rm`); a namespace nobody holds any more takes its interfaces, and
        so both ends of its veths, with it a few milliseconds later, in the kernel's own work.
        Setting the host ends down first (under a millisecond) makes them inert at once: the
        bridge stops forwarding to them, so the container's old address cannot answer for a
        new container given it meanwhile. The caller still deletes the host ends (in the
        background), for a namespace something else keeps alive.
        """
        with Rtnl() as host:
            for name in host_ifnames:
                found = host.link(name)
                if found is not None:
                    with contextlib.suppress(RtnlError):
                        host.set_link(found.index, up=False)
        self.remove_netns(path)

    def netns_in_use(self, path: str) -> bool:
        """Whether any process lives in the namespace pinned at C{path}."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        # An unmounted placeholder file is not a namespace (nsfs has its own device).
        try:
            ns_dev = os.stat("/proc/self/ns/net").st_dev
        except OSError:  # pragma: no cover
            return False
        if st.st_dev != ns_dev:
            return False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                s = os.stat(f"/proc/{pid}/ns/net")
            except OSError:
                continue
            if s.st_ino == st.st_ino and s.st_dev == st.st_dev:
                return True
        return False

    def netns_links(self, path: str) -> list[str]:
        """Interface names inside the namespace at C{path}."""
        with _rtnl_in(path) as ns:
            return [link.name for link in ns.links()]

    # -- container interfaces --------------------------------------------------------------

    def attach(self, netns_path: str, iface: Interface) -> None:
        """Create a veth pair: host end on C{iface.bridge}, the other end configured in the netns.

        Through L{pyd.drivers.network.rtnl}, one socket on each side for the whole of it (the
        readiness wait too), links asked for by name: with pyroute2 this cost ~15 ms of CPU a
        container, beside its start on 2 cores (docs/performance.md, issue 21 session 10).
        The bridge port's hairpin mode stays off, as dockerd leaves it with its userland proxy
        (pyd's earlier request for it, through pyroute2, was silently not applied)."""
        peer_tmp = "pp" + iface.host_ifname[-13:]
        nsfd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with Rtnl() as host:
                self._plug_host_end(host, nsfd, peer_tmp, iface)
                try:
                    with _rtnl_in(netns_path) as ns:
                        self._configure_peer(ns, peer_tmp, iface)
                        self._wait_ready(ns, host, netns_path, iface)
                except (OSError, NetworkDriverError) as e:  # RtnlError is an OSError
                    with contextlib.suppress(RtnlError):  # what failed is what is reported
                        host.delete_named(iface.host_ifname)
                    if isinstance(e, NetworkDriverError):
                        raise
                    raise NetworkDriverError(
                        f"configuring {iface.ifname} in {netns_path}: {e}"
                    ) from e
        finally:
            os.close(nsfd)

    @staticmethod
    def _plug_host_end(host: Rtnl, nsfd: int, peer_tmp: str, iface: Interface) -> None:
        """The veth pair made (its peer in the namespace), the host end enslaved and up."""
        br = host.link(iface.bridge)
        if br is None:
            raise NetworkDriverError(f"bridge {iface.bridge} does not exist")
        for attempt in (1, 2):
            try:
                host.add_veth(iface.host_ifname, peer_tmp, nsfd, iface.mtu)
                break
            except RtnlError as e:
                # The same container's previous veth (the name is derived from the container
                # and the network), released at its stop and not yet destroyed with its
                # namespace: delete it now and make the new one.
                if e.code == errno.EEXIST and attempt == 1:
                    with contextlib.suppress(RtnlError):
                        host.delete_named(iface.host_ifname)
                    continue
                raise NetworkDriverError(f"creating veth {iface.host_ifname}: {e}") from e
        made = host.link(iface.host_ifname)
        if made is None:
            raise NetworkDriverError(f"creating veth {iface.host_ifname}: it vanished")
        try:
            host.set_link(made.index, master=br.index, up=True)
        except RtnlError as e:
            with contextlib.suppress(RtnlError):
                host.delete_link(made.index)
            raise NetworkDriverError(f"enslaving {iface.host_ifname}: {e}") from e

    @staticmethod
    def _configure_peer(ns: Rtnl, peer_tmp: str, iface: Interface) -> None:
        """The namespace's end renamed, given its MAC and up (one request: the kernel renames
        before it raises the link), then its addresses and default routes."""
        peer = ns.link(peer_tmp)
        if peer is None:
            raise NetworkDriverError(f"configuring {iface.ifname}: {peer_tmp} is not there")
        idx = peer.index
        ns.set_link(idx, name=iface.ifname, mac=iface.mac, up=True)
        if iface.address:  # none on an IPv6-only network
            ns.add_address(idx, iface.address, iface.prefixlen)
        if iface.address6:
            ns.add_address(idx, iface.address6, iface.prefixlen6, IFA_F_NODAD)
        for extra, plen in iface.extra:
            ns.add_address(idx, extra, plen, IFA_F_NODAD if ":" in extra else 0)
        if iface.gateway:
            ns.add_default_route(iface.gateway)
        if iface.gateway6:
            ns.add_default_route(iface.gateway6)

    def _wait_ready(
        self,
        ns: Rtnl,
        host: Rtnl,
        netns_path: str,
        iface: Interface,
        timeout: float = 30.0,
    ) -> None:
        """Return once both veth ends are operationally up and the bridge port forwards.

        Setting a link up only asks for it: the kernel's linkwatch work (which needs the RTNL
        lock) later turns the carrier into operstate UP, swaps the device's C{noop} qdisc (which
        drops every packet) for the real one, and lets the bridge enable the port. Under load,
        with other namespaces being created or destroyed, that takes from milliseconds to
        seconds; a container's first packets (an ARP request, its first DNS query) sent before
        it are lost, and a lost DNS query costs the resolver library a 5 s timeout.
        """
        deadline = time.monotonic() + timeout
        # Netlink, not /sys: the daemon may run in a network namespace /sys does not show.
        while True:
            inner = ns.link(iface.ifname)
            if inner is not None and inner.up:
                end = host.link(iface.host_ifname)
                # a kernel that does not report the port's state: operstate must do
                if end is not None and end.up and end.port_state in (None, BR_STATE_FORWARDING):
                    return
            if time.monotonic() > deadline:
                raise NetworkDriverError(
                    f"{iface.ifname} in {netns_path} did not come up within {timeout:.0f} s"
                )
            # An io-pool thread, never the reactor: a short poll is the simplest wait.
            time.sleep(0.005)  # noqa: TID251

    # -- the embedded resolver's sockets ---------------------------------------------------

    def dns_sockets(
        self, netns_path: str, address: str, udp_port: int = 0, tcp_port: int = 0
    ) -> tuple[socket.socket, socket.socket]:
        """A non-blocking UDP socket and a listening TCP socket on C{address}, inside the netns.

        The ports asked for are tried first (to keep existing redirect rules valid after a
        daemon restart); if one is taken, the kernel picks another.
        """
        with _in_netns(netns_path):
            udp = _bound(socket.SOCK_DGRAM, address, udp_port)
            try:
                tcp = _bound(socket.SOCK_STREAM, address, tcp_port)
                tcp.listen(128)
            except OSError:
                udp.close()
                raise
        return udp, tcp

    def detach(self, netns_path: str, ifname: str, host_ifname: str) -> None:
        """Remove one container interface (deleting either veth end removes both)."""
        if os.path.exists(netns_path):
            with contextlib.suppress(OSError), _rtnl_in(netns_path) as ns:  # RtnlError too
                ns.delete_named(ifname)
        self.delete_link(host_ifname)
