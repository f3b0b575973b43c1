"""The egress guard: a forward proxy that every outbound page fetch must go through.

A headless browser fetches far more than the page it was sent to (subresources, iframes,
``fetch()``, WebSockets, workers, redirect hops), so checking the page's URL is not a guard.
Instead the browser is launched with this proxy as its only way out, and resolves nothing itself.
For every connection the proxy::

    parse the target (CONNECT host:port, or an absolute-form http:// request)
      → resolve the host once (an address literal is not resolved at all)
      → check EVERY address with the URL policy (``netguard.classify_ip``, the private allowlist,
        ``OGSHOT_ALLOW_PRIVATE_NETWORKS``); one private answer refuses the whole name
      → dial exactly a checked address, never the name, so a second DNS answer cannot differ
        (no DNS rebinding)
      → then relay bytes both ways, and nothing else

and fails closed: a name that does not resolve, a refused address, a malformed request, a slow
or oversized request head all end in a 4xx/5xx answer and a closed connection. Plain HTTP
requests are sent on with ``Connection: close`` so that one vetted upstream connection never
carries a later request meant for another host.

The proxy knows nothing of browsers: the page-metadata fetcher sends its requests through it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .netguard import IPAddress, UrlPolicy, classify_ip, host_literal

log = logging.getLogger("ogshot")

#: A request head (request line and headers) larger than this is refused.
MAX_HEAD = 32 * 1024
#: Seconds a client has to send its request head, and a dial has to connect.
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
_CHUNK = 64 * 1024
#: Seconds an upstream may keep answering after the client has stopped sending.
_DRAIN_GRACE = 30.0
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
}

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class Refused(Exception):
    """A connection the guard will not make; ``status`` is what the client is answered."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host`` (A and AAAA), in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


@dataclass(frozen=True)
class AddressPolicy:
    """Which (host, port, address) triples a connection may go to; built from a :class:`UrlPolicy`.

    A public address always may. A private one may only when private networks are allowed, or
    when the host *as written* and the port are one of the allowlisted origins: the allowlist
    names one server (``http://127.0.0.1:8080``), never a whole address range.
    """

    allow_private: bool = False
    private_origins: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_url_policy(cls, policy: UrlPolicy) -> AddressPolicy:
        origins = set()
        for origin in policy.private_origins:
            parts = urlsplit(origin)
            if parts.hostname and parts.port:
                origins.add((parts.hostname.lower(), parts.port))
        return cls(policy.allow_private, frozenset(origins))

    def reason(self, host: str, port: int, ip: IPAddress) -> str | None:
        """Why connecting to ``ip`` for ``host:port`` is refused, or None when it is allowed."""
        why = classify_ip(ip)
        if why is None or self.allow_private:
            return None
        if (host.lower().strip("[]").rstrip("."), port) in self.private_origins:
            return None
        return why


@dataclass
class EgressStats:
    """What the proxy did; tests and logs read it."""

    allowed: int = 0
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    #: The paths of refused plain-HTTP requests (a CONNECT shows no path), newest last.
    refused_paths: list[str] = field(default_factory=list)


def _split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    authority = authority.strip()
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise Refused("bad_target", 400)
        host, rest = authority[1:end], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            raise Refused("bad_target", 400)
        port_text = rest[1:]
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if not port_text:
        port = default_port
    elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise Refused("bad_target", 400)
    if not host:
        raise Refused("bad_target", 400)
    return host, port


class EgressProxy:
    """The guard proxy, listening on ``127.0.0.1`` at a port of the system's choosing."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver = system_resolver,
        connect_timeout: float = CONNECT_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.head_timeout = head_timeout
        self.stats = EgressStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> EgressProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Aborted transports close their sockets on the loop's next turn: let it come.
        await asyncio.sleep(0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except Refused as exc:
            await self._refuse(writer, exc)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:  # fail closed, whatever went wrong
            log.exception("egress proxy error")
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._tasks.discard(task)

    async def _refuse(self, writer: asyncio.StreamWriter, exc: Refused) -> None:
        phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 504: "Gateway Timeout"}
        body = f"ogshot egress guard: {exc.reason}\n".encode()
        head = (
            f"HTTP/1.1 {exc.status} {phrase.get(exc.status, 'Error')}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"X-Ogshot-Refused: {exc.reason}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(Exception):
            writer.write(head.encode() + body)
            await asyncio.wait_for(writer.drain(), 1.0)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        try:
            async with asyncio.timeout(self.head_timeout):
                return await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise Refused("slow_request", 400) from None
        except asyncio.LimitOverrunError:
            raise Refused("request_too_large", 400) from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await self._read_head(reader)
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise Refused("bad_request", 400) from None
        request_line, _, header_block = text.partition("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise Refused("bad_request", 400)
        method, target, version = parts
        if method == "CONNECT":
            host, port = _split_host_port(target, 443)
            upstream = await self._dial(host, port)
            up_reader, up_writer = upstream
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await self._relay(reader, writer, up_reader, up_writer)
            return
        try:
            url = urlsplit(target)
        except ValueError:
            raise Refused("bad_target", 400) from None
        if url.scheme.lower() != "http" or not url.netloc:
            # Only absolute-form http:// reaches a forward proxy; https comes as CONNECT.
            raise Refused("bad_scheme", 400)
        if "@" in url.netloc:
            raise Refused("bad_target", 400)
        host, port = _split_host_port(url.netloc, 80)
        lines = [
            line
            for line in header_block.split("\r\n")
            if line and line.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP
        ]
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        forwarded = f"{method} {path} {version}\r\n" + "".join(f"{ln}\r\n" for ln in lines)
        forwarded += "Connection: close\r\n\r\n"
        try:
            up_reader, up_writer = await self._dial(host, port)
        except Refused:
            del self.stats.refused_paths[:-999]  # a bounded record
            self.stats.refused_paths.append(url.path)
            raise
        up_writer.write(forwarded.encode("latin-1"))
        await self._relay(reader, writer, up_reader, up_writer)

    async def _dial(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve once, check every address, connect to a checked address: or refuse."""
        host = host.lower().rstrip(".")
        literal = host_literal(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    addresses = await self.resolver(host, port)
            except (OSError, TimeoutError, UnicodeError):
                addresses = []
            if not addresses:
                self.stats.refused.append((host, port, "unresolved"))
                raise Refused("unresolved", 502)
        for ip in addresses:
            why = self.policy.reason(host, port, ip)
            if why is not None:
                self.stats.refused.append((host, port, why))
                log.info("egress guard refused %s:%d (%s is %s)", host, port, ip, why)
                raise Refused(why)
        last: Exception | None = None
        for ip in addresses:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    conn = await asyncio.open_connection(str(ip), port, limit=_CHUNK)
            except (OSError, TimeoutError) as exc:
                last = exc
                continue
            self.stats.allowed += 1
            self._writers.add(conn[1])
            return conn
        raise Refused("connect_failed" if not isinstance(last, TimeoutError) else "timeout", 502)

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(_CHUNK):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    if dst.can_write_eof():
                        dst.write_eof()

        try:
            up = asyncio.create_task(pump(reader, up_writer))
            down = asyncio.create_task(pump(up_reader, writer))
            try:
                done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                if down not in done:
                    # The client is done sending; the upstream gets a short while to finish.
                    await asyncio.wait({down}, timeout=_DRAIN_GRACE)
            finally:
                down.cancel()
                up.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()
