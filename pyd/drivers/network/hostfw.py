"""The one place pyd writes outside its own nft table: the host's filter FORWARD (layer: drivers).

An C{accept} in pyd's table cannot override a C{drop} of another table's base chain on the same
hook: with the host's iptables C{FORWARD} policy at DROP (C{iptables -P FORWARD DROP}, a
firewall, a dockerd that ran before) bridged traffic and published ports from other machines
die there. dockerd inserts its chains into that C{FORWARD}; pyd does the same, minimally and
reversibly, through the host's own C{iptables}/C{ip6tables} program (iptables-nft or legacy,
whichever the host uses):

  - C{FORWARD} gets one rule at its head, C{-m comment --comment pyd:<table> -j <T>-FORWARD};
  - C{<T>-FORWARD} (pyd's, rewritten whole) jumps to C{<T>-USER} first, the operator's hook
    as dockerd's C{DOCKER-USER} (created empty if missing, never flushed: a C{DROP} there wins,
    a C{RETURN} goes on), then accepts, per bridge, replies (C{-o br} RELATED,ESTABLISHED),
    published ports (C{-o br} ctstate DNAT) and the bridge's own outbound (C{-i br}).

pyd's nft table still decides: what it drops stays dropped (a drop in any base chain is final).
The chain and the rule are found again by name and comment, so a restart after a crash replaces
exactly them, and L{HostForward.apply} with no bridges removes them (and C{<T>-USER} when the
operator left it empty). Nothing is done where the host has no filter C{FORWARD} (no
C{ip filter} table under iptables-nft, no C{filter} table loaded under legacy iptables, no
C{iptables} program): nothing there drops.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyd.drivers.process import ProcessRunner

# iptables reads a trailing "+" in an interface name as a wildcard ("br+": every br*), and
# iptables-restore splits on quotes: a bridge whose name is not plain gets no accept here
# (its traffic is left to the host's policy) rather than one that could match other devices.
_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def plain(bridge: str) -> bool:
    """Whether C{bridge} can be named to iptables exactly (no wildcard, no quoting)."""
    return _PLAIN.fullmatch(bridge) is not None


class HostForwardError(Exception):
    """iptables refused pyd's rules."""


def chain_names(table: str) -> tuple[str, str]:
    """pyd's chain and the operator's hook chain for the daemon whose nft table is C{table}."""
    base = table.upper()
    return f"{base}-FORWARD", f"{base}-USER"


def comment(table: str) -> str:
    """The comment that marks pyd's rule in the host's C{FORWARD}."""
    return f"pyd:{table}"


def render(table: str, bridges: Sequence[str], stale: Sequence[str]) -> str:
    """The C{iptables-restore --noflush} script that installs pyd's chain and jump.

    @param stale: rules of ours now in C{FORWARD} (as C{iptables -S} prints them), deleted.
    """
    chain, user = chain_names(table)
    lines = ["*filter", f":{chain} - [0:0]"]  # declared: created, or flushed when it exists
    lines += ["-D" + rule[2:] for rule in stale]
    lines.append(f'-I FORWARD 1 -m comment --comment "{comment(table)}" -j {chain}')
    lines.append(f"-A {chain} -j {user}")
    for br in filter(plain, bridges):
        lines.append(f"-A {chain} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        lines.append(f"-A {chain} -o {br} -m conntrack --ctstate DNAT -j ACCEPT")
        lines.append(f"-A {chain} -i {br} -j ACCEPT")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_removal(table: str, stale: Sequence[str], chain_exists: bool) -> str:
    """The C{iptables-restore --noflush} script that removes pyd's jump and chain."""
    chain, _ = chain_names(table)
    lines = ["*filter"] + ["-D" + rule[2:] for rule in stale]
    if chain_exists:
        lines += [f":{chain} - [0:0]", f"-X {chain}"]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def ours(table: str, listing: str) -> list[str]:
    """The rules of C{iptables -S FORWARD} output that are pyd's (marked or jumping to its
    chain)."""
    chain, _ = chain_names(table)
    out = []
    for line in listing.splitlines():
        words = line.split()
        if words[:2] != ["-A", "FORWARD"]:
            continue
        marked = any(
            w == "--comment" and i + 1 < len(words) and words[i + 1].strip('"') == comment(table)
            for i, w in enumerate(words)
        )
        if marked or words[-2:] == ["-j", chain]:
            out.append(line.strip())
    return out


class HostForward:
    """Keeps pyd's accept rules in the host's filter C{FORWARD} of one family."""

    def __init__(
        self, runner: ProcessRunner, table: str, family: str, nft: str = "nft", variant: str = ""
    ) -> None:
        """@param family: C{ip} (iptables) or C{ip6} (ip6tables).
        @param variant: C{""} (the host's C{iptables}), C{"-legacy"} or C{"-nft"}."""
        self._runner = runner
        self.table = table
        self.family = family
        self._prog = ("iptables" if family == "ip" else "ip6tables") + variant
        self._nft = nft

    async def _run(self, *argv: str, stdin: bytes | None = None) -> tuple[bool, str, str]:
        try:
            r = await self._runner.run(list(argv), stdin=stdin)
        except OSError:  # no such program
            return False, "", "not installed"
        return r.ok, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")

    async def host_chain(self) -> bool:
        """Whether the host has a filter C{FORWARD} of this family that pyd must open."""
        ok, out, _ = await self._run(self._prog, "--version")
        if not ok:
            return False
        if "nf_tables" in out:
            # Asked of nft: listing with iptables-nft would not say whether the table exists.
            ok, _, _ = await self._run(self._nft, "list", "chain", self.family, "filter", "FORWARD")
            return ok
        names = "/proc/net/ip_tables_names" if self.family == "ip" else "/proc/net/ip6_tables_names"
        ok, out, _ = await self._run("cat", names)
        return ok and "filter" in out.split()

    async def _stale(self) -> list[str]:
        ok, out, err = await self._run(self._prog, "-w", "-S", "FORWARD")
        if not ok:
            raise HostForwardError(f"{self._prog} -S FORWARD failed: {err.strip()}")
        return ours(self.table, out)

    async def _chain_exists(self, name: str) -> bool:
        ok, _, _ = await self._run(self._prog, "-w", "-S", name)
        return ok

    async def apply(self, bridges: Sequence[str]) -> bool:
        """Open the host's C{FORWARD} for C{bridges} (none: remove pyd's rules).

        @return: whether the host has a filter C{FORWARD} (False: nothing was done).
        @raise HostForwardError: iptables refused.
        """
        if not await self.host_chain():
            return False
        stale = await self._stale()
        chain, user = chain_names(self.table)
        if not bridges:
            exists = await self._chain_exists(chain)
            if stale or exists:
                await self._restore(render_removal(self.table, stale, exists))
            # The operator's hook goes only when empty (iptables -X refuses otherwise).
            await self._run(self._prog, "-w", "-X", user)
            return True
        if not await self._chain_exists(user):
            ok, _, err = await self._run(self._prog, "-w", "-N", user)
            if not ok and "exists" not in err:
                raise HostForwardError(f"{self._prog} -N {user} failed: {err.strip()}")
        await self._restore(render(self.table, bridges, stale))
        return True

    async def _restore(self, script: str) -> None:
        ok, _, err = await self._run(
            f"{self._prog}-restore", "-w", "--noflush", stdin=script.encode()
        )
        if not ok:
            raise HostForwardError(f"{self._prog}-restore failed: {err.strip()}")
