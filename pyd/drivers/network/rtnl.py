"""The rtnetlink requests pyd makes, written out (layer: drivers): links listed or looked up
by name, a bridge or a veth pair (its peer in a namespace) made, a link enslaved, renamed,
given a MAC or MTU, raised, lowered or deleted; addresses listed and added; routes listed and
a default route added.

Why not pyroute2, which pyd used before: each of its requests cost ~1 ms of Python (its
message classes, an asyncio loop run per call) and each socket ~1 ms; plugging one container
took ~15 of them, on the io threads beside the start's own work on 2 cores, and importing it
cost the daemon ~2 MiB resident and ~40 ms of its start (docs/performance.md, issue 21 session
10). Here a request is a few C{struct.pack} calls and one C{send}/C{recv}. What the kernel is
told is what pyroute2 told it (the same attributes; tests/contract/test_network_kernel.py reads
the resulting interfaces back with ip).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from types import TracebackType

# message types and flags (linux/rtnetlink.h, linux/netlink.h)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 20, 22, 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x300, 0x200, 0x400
NLA_F_NESTED = 0x8000
# link attributes (linux/if_link.h)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_NET_NS_FD = 16, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA = 1, 2, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_STATE = 1
IFF_UP = 0x1
IF_OPER_UP = 6
BR_STATE_FORWARDING = 3
# addresses and routes (linux/if_addr.h, linux/rtnetlink.h)
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1

_HDR = struct.Struct("=LHHLL")  # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg
_IFADDR = struct.Struct("=BBBBi")  # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_ATTR = struct.Struct("=HH")  # rtattr


class RtnlError(OSError):
    """The kernel refused a request; C{code} is its errno. The message is the errno's text
    alone: the driver's callers say what they were doing (L{NetworkDriverError})."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))
        self.code = code


def _attr(kind: int, data: bytes) -> bytes:
    size = _ATTR.size + len(data)
    return _ATTR.pack(size, kind) + data + b"\0" * (-size % 4)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _attrs(data: bytes) -> dict[int, bytes]:
    """The attributes of C{data} by type (nested flag cleared; the first of a repeated type)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + _ATTR.size <= len(data):
        size, kind = _ATTR.unpack_from(data, pos)
        if size < _ATTR.size:
            break
        out.setdefault(kind & ~NLA_F_NESTED, data[pos + _ATTR.size : pos + size])
        pos += (size + 3) & ~3
    return out


class Link:
    """A link: its index, name, kind ("bridge", "veth"; "" for none), master's index (0 for
    none), whether it is operationally up, and its bridge-port state (None when it is not a
    port, or the kernel does not say)."""

    def __init__(self, index: int, attrs: dict[int, bytes]) -> None:
        self.index = index
        self.name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
        master = attrs.get(IFLA_MASTER)
        self.master = struct.unpack_from("=I", master)[0] if master else 0
        self.kind = ""
        oper = attrs.get(IFLA_OPERSTATE)
        self.up = oper is not None and oper[0] == IF_OPER_UP
        self.port_state: int | None = None
        info = attrs.get(IFLA_LINKINFO)
        if info is not None:
            parts = _attrs(info)
            kind = parts.get(IFLA_INFO_KIND)
            self.kind = kind.rstrip(b"\0").decode(errors="replace") if kind else ""
            slave = parts.get(IFLA_INFO_SLAVE_DATA)
            if slave is not None:
                state = _attrs(slave).get(IFLA_BRPORT_STATE)
                if state:
                    self.port_state = state[0]


class Rtnl:
    """One NETLINK_ROUTE socket (of the calling thread's namespace, or C{sock}), used by one
    thread at a time; a context manager that closes it."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self._sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request, asking for its acknowledgement; return the answers' bodies
        before it. @raise RtnlError: the kernel's error."""
        self._seq += 1
        seq = self._seq
        flags |= NLM_F_REQUEST | NLM_F_ACK
        self._sock.send(_HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body)
        answers: list[bytes] = []
        while True:
            data = self._sock.recv(65536)
            pos = 0
            while pos + _HDR.size <= len(data):
                size, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, pos)
                if size < _HDR.size:
                    raise RtnlError(errno.EPROTO)
                payload = data[pos + _HDR.size : pos + size]
                pos += (size + 3) & ~3
                if mseq != seq:
                    continue  # an answer to nothing of ours (cannot happen on a private socket)
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise RtnlError(-code)
                    return answers
                if mtype == NLMSG_DONE:
                    return answers
                answers.append(payload)

    # -- links -----------------------------------------------------------------------------

    def link(self, name: str) -> Link | None:
        """The link called C{name}, or None."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
        try:
            answers = self._request(RTM_GETLINK, 0, body)
        except RtnlError as e:
            if e.code == errno.ENODEV:
                return None
            raise
        for payload in answers:
            _family, _type, index, _flags, _change = _IFINFO.unpack_from(payload)
            return Link(index, _attrs(payload[_IFINFO.size :]))
        return None

    def links(self) -> list[Link]:
        """Every link of the namespace."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        out = []
        for payload in self._request(RTM_GETLINK, NLM_F_DUMP, body):
            _family, _type, index, _flags, _change = _IFINFO.unpack_from(payload)
            out.append(Link(index, _attrs(payload[_IFINFO.size :])))
        return out

    def add_bridge(self, name: str) -> None:
        """A bridge called C{name} (the kernel's defaults: no STP, no VLAN filtering)."""
        info = _attr(IFLA_INFO_KIND, b"bridge\0")
        body = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + _attr(IFLA_IFNAME, _name(name))
            + _attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        )
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int) -> None:
        """A veth pair: C{name} here, C{peer} made in the namespace of C{peer_netns_fd}."""
        peer_msg = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + _attr(IFLA_IFNAME, _name(peer))
            + _attr(IFLA_MTU, struct.pack("=I", mtu))
            + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
        )
        info = _attr(IFLA_INFO_KIND, b"veth\0") + _attr(
            IFLA_INFO_DATA | NLA_F_NESTED, _attr(VETH_INFO_PEER, peer_msg)
        )
        body = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + _attr(IFLA_IFNAME, _name(name))
            + _attr(IFLA_MTU, struct.pack("=I", mtu))
            + _attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        )
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_link(
        self,
        index: int,
        *,
        up: bool | None = None,
        master: int | None = None,
        name: str | None = None,
        mac: str | None = None,
        mtu: int | None = None,
    ) -> None:
        """Change a link: raised or lowered, enslaved, renamed, given a MAC or MTU (one request;
        the kernel applies a new name and MAC before the up flag)."""
        attrs = b""
        if mtu is not None:
            attrs += _attr(IFLA_MTU, struct.pack("=I", mtu))
        if name is not None:
            attrs += _attr(IFLA_IFNAME, _name(name))
        if mac is not None:
            attrs += _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
        if master is not None:
            attrs += _attr(IFLA_MASTER, struct.pack("=I", master))
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change) + attrs
        self._request(RTM_NEWLINK, 0, body)

    def delete_named(self, name: str) -> bool:
        """Delete the link called C{name}; False when there is none (or it went meanwhile)."""
        found = self.link(name)
        if found is None:
            return False
        try:
            self.delete_link(found.index)
        except RtnlError as e:
            if e.code == errno.ENODEV:
                return False
            raise
        return True

    def delete_link(self, index: int) -> None:
        """Delete a link (a veth's peer goes with it)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        self._request(RTM_DELLINK, 0, body)

    # -- addresses and routes --------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        """An address on a link (IFA_LOCAL and IFA_ADDRESS, as ip and pyroute2 set them; no
        broadcast address)."""
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        packed = ip.packed
        body = _IFADDR.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index)
        body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def addresses(self, index: int, family: int) -> list[tuple[str, int]]:
        """The addresses (and prefix lengths) of family C{family} on link C{index}."""
        body = _IFADDR.pack(family, 0, 0, 0, 0)
        out = []
        for payload in self._request(RTM_GETADDR, NLM_F_DUMP, body):
            fam, plen, _flags, _scope, idx = _IFADDR.unpack_from(payload)
            if idx != index or fam != family:
                continue
            addr = _attrs(payload[_IFADDR.size :]).get(IFA_ADDRESS)
            if addr:
                out.append((str(ipaddress.ip_address(addr)), plen))
        return out

    def routes(self, family: int) -> list[tuple[str | None, int, int]]:
        """Every route of family C{family}: (destination or None for a default route,
        destination prefix length, table)."""
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        out = []
        for payload in self._request(RTM_GETROUTE, NLM_F_DUMP, body):
            fam, dst_len, _src_len, _tos, table, _proto, _scope, _type, _flags = _RTMSG.unpack_from(
                payload
            )
            if fam != family:
                continue
            attrs = _attrs(payload[_RTMSG.size :])
            if RTA_TABLE in attrs:
                (table,) = struct.unpack_from("=I", attrs[RTA_TABLE])
            dst = attrs.get(RTA_DST)
            out.append((str(ipaddress.ip_address(dst)) if dst else None, dst_len, table))
        return out

    def add_default_route(self, gateway: str) -> None:
        """The default route via C{gateway} (IPv4 or IPv6), in the main table."""
        ip = ipaddress.ip_address(gateway)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        body = _RTMSG.pack(
            family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        )
        body += _attr(RTA_GATEWAY, ip.packed)
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)
