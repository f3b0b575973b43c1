"""Pages served on loopback for the local-browser tests, and a canary that counts who reaches it.

:class:`Site` is the allowed origin (put in ``OGSHOT_PRIVATE_ALLOWLIST``); :class:`Canary` listens
on other loopback ports (TCP on 127.0.0.1 and ::1, and UDP) and counts every connection and
datagram. The guard's tests load pages from the site that try every way they can to reach the
canary; the canary must stay at zero.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>Plain title</title>
<meta property="og:title" content="The page's own title">
<meta name="description" content="What the page says it is about.">
<meta property="og:site_name" content="Loopback Gazette">
</head><body style="margin:0;background:#1e6fd9;color:white;font:48px sans-serif">
<h1 style="margin:80px">Served on loopback</h1></body></html>"""

TITLE_ONLY = """<!doctype html><html><head><title>Only a &lt;title&gt; here</title></head>
<body style="background:#eee"><p>text</p></body></html>"""

CLUTTERED = """<!doctype html><html><head><title>Cluttered</title>
<style>body{margin:0;background:#1e6fd9}
#onetrust-banner-sdk{position:fixed;left:0;right:0;bottom:0;height:45%;background:#e01010}
ins.adsbygoogle{display:block;position:absolute;top:0;left:0;width:40%;height:40%;
background:#10c010}</style>
<script async src="/pagead/js/adsbygoogle.js"></script></head><body>
<ins class="adsbygoogle"></ins>
<div id="onetrust-banner-sdk">We value your privacy. Accept all cookies?</div>
</body></html>"""

NOTHING = """<!doctype html><html><head></head><body style="background:#fc0"><p>no title</p></body>
</html>"""


def hostile(c: int, udp: int) -> str:
    """A page that tries to reach the canary on port ``c`` (UDP ``udp``) every way it can."""
    canary = f"http://127.0.0.1:{c}"
    spellings = [
        f"http://2130706433:{c}/n-decimal",
        f"http://0x7f.1:{c}/n-hex",
        f"http://0177.0.0.1:{c}/n-octal",
        f"http://127.1:{c}/n-short",
        f"http://[::ffff:127.0.0.1]:{c}/n-mapped",
        f"http://[::ffff:7f00:1]:{c}/n-mapped-hex",
        f"http://[::1]:{c}/n-v6",
        f"http://localhost:{c}/n-localhost",
        f"http://localhost.:{c}/n-localhost-dot",
        f"https://127.0.0.1:{c}/n-https",
    ]
    imgs = "".join(f'<img src="{u}" width=1 height=1>' for u in spellings)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Hostile</title>
<link rel="stylesheet" href="{canary}/style.css">
<link rel="prefetch" href="{canary}/prefetch">
<link rel="preload" as="image" href="{canary}/preload">
<link rel="dns-prefetch" href="{canary}">
<link rel="preconnect" href="{canary}">
<link rel="icon" href="{canary}/favicon.ico">
<style>@font-face {{ font-family: canary; src: url({canary}/font.woff2); }}
body {{ font-family: canary, sans-serif; background: #2a9d8f; }}</style>
<script async src="{canary}/script.js"></script>
</head><body>
<h1>Hostile page</h1>
<img src="{canary}/img.png" width=1 height=1>
{imgs}
<img src="/redirect?to={canary}/via-302" width=1 height=1>
<iframe src="{canary}/frame" width=10 height=10></iframe>
<iframe src="/refresh?to={canary}/meta-refresh" width=10 height=10></iframe>
<iframe src="/redirect?to={canary}/frame-302" width=10 height=10></iframe>
<iframe name="sink" width=10 height=10></iframe>
<form id="f" method="post" action="{canary}/form" target="sink"><input name="a" value="b"></form>
<video src="{canary}/video.mp4" autoplay muted></video>
<script>
const C = "{canary}";
const quiet = (p) => p && p.catch && p.catch(() => {{}});
quiet(fetch(C + "/fetch"));
quiet(fetch("https://127.0.0.1:{c}/fetch-https"));
quiet(fetch("/redirect?to=" + encodeURIComponent(C + "/fetch-302")));
try {{ const x = new XMLHttpRequest(); x.open("GET", C + "/xhr"); x.send(); }} catch (e) {{}}
try {{ navigator.sendBeacon(C + "/beacon", "x"); }} catch (e) {{}}
try {{ new WebSocket("ws://127.0.0.1:{c}/ws"); }} catch (e) {{}}
try {{ new WebSocket("wss://127.0.0.1:{c}/wss"); }} catch (e) {{}}
try {{ new EventSource(C + "/events"); }} catch (e) {{}}
try {{ new Worker("/worker.js?c={c}"); }} catch (e) {{}}
try {{ new SharedWorker("/worker.js?c={c}&shared=1"); }} catch (e) {{}}
if (navigator.serviceWorker) quiet(navigator.serviceWorker.register("/sw.js?c={c}"));
try {{ window.open(C + "/popup"); }} catch (e) {{}}
try {{ document.getElementById("f").submit(); }} catch (e) {{}}
try {{
  const pc = new RTCPeerConnection({{iceServers: [
    {{urls: "stun:127.0.0.1:{udp}"}},
    {{urls: "turn:127.0.0.1:{udp}?transport=udp", username: "u", credential: "p"}},
    {{urls: "turn:127.0.0.1:{c}?transport=tcp", username: "u", credential: "p"}}]}});
  pc.createDataChannel("x");
  pc.createOffer().then((o) => pc.setLocalDescription(o)).catch(() => {{}});
}} catch (e) {{}}
</script></body></html>"""


WORKER = """
const c = new URL(location.href).searchParams.get("c");
const C = "http://127.0.0.1:" + c;
fetch(C + "/worker-fetch").catch(() => {});
try { new WebSocket("ws://127.0.0.1:" + c + "/worker-ws"); } catch (e) {}
try { const x = new XMLHttpRequest(); x.open("GET", C + "/worker-xhr"); x.send(); } catch (e) {}
try { importScripts(C + "/worker-import.js"); } catch (e) {}
"""

SERVICE_WORKER = """
const c = new URL(location.href).searchParams.get("c");
self.addEventListener("install", () => {
  fetch("http://127.0.0.1:" + c + "/sw-fetch").catch(() => {});
});
self.addEventListener("fetch", (e) => {
  e.respondWith(fetch("http://127.0.0.1:" + c + "/sw-intercept"));
});
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(
        self,
        status: int,
        body: str,
        ctype: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self._send(200, "ok", "text/plain")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        site = self.server.site
        site.hits.append(url.path)
        if url.path == "/":
            self._send(200, PAGE)
        elif url.path == "/tall":
            self._send(200, '<body style="margin:0"><div style="height:3000px;background:#999">')
        elif url.path == "/late-title":
            filler = "<!-- " + "x" * 4000 + " -->"
            self._send(200, f"<!doctype html><html><head>{filler}<title>Late title</title>")
        elif url.path == "/cluttered":
            self._send(200, CLUTTERED)
        elif url.path == "/pagead/js/adsbygoogle.js":
            self._send(200, "/* an ad script */", "text/javascript")
        elif url.path == "/title-only":
            self._send(200, TITLE_ONLY)
        elif url.path in ("/nothing", "/page-untitled"):
            self._send(200, NOTHING)
        elif url.path == "/hostile":
            self._send(200, hostile(int(q["c"]), int(q["u"])))
        elif url.path == "/worker.js":
            self._send(200, WORKER, "text/javascript")
        elif url.path == "/sw.js":
            self._send(200, SERVICE_WORKER, "text/javascript")
        elif url.path == "/redirect":
            self._send(302, "", "text/plain", {"Location": q["to"]})
        elif url.path == "/refresh":
            body = f'<meta http-equiv="refresh" content="0;url={q["to"]}"><p>refreshing</p>'
            self._send(200, body)
        elif url.path == "/slow":
            time.sleep(float(q.get("s", "1.5")))
            self._send(200, PAGE)
        elif url.path == "/hang":
            # Headers and the start of a document, then nothing: the page never finishes.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"<!doctype html><html><head><title>hang</title>")
            self.wfile.flush()
            site.stop_hanging.wait(60)
        else:
            self._send(404, "not found", "text/plain")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    site: Site


class Site:
    """The allowed origin, on 127.0.0.1 at a free port."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.stop_hanging = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.site = self
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Site:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_hanging.set()
        self.server.shutdown()
        self.server.server_close()


class Canary:
    """Counts TCP connections (127.0.0.1 and ::1, one port) and UDP datagrams it receives."""

    def __init__(self) -> None:
        self.connections: list[str] = []
        self.datagrams = 0
        self._stop = threading.Event()
        self.tcp4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp4.bind(("127.0.0.1", 0))
        self.port = self.tcp4.getsockname()[1]
        self.sockets = [self.tcp4]
        try:
            tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            tcp6.bind(("::1", self.port))
            self.sockets.append(tcp6)
        except OSError:
            pass  # no IPv6 loopback here: the v6 spellings then cannot connect anyway
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp_port = self.udp.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def touched(self) -> int:
        return len(self.connections) + self.datagrams

    def start(self) -> Canary:
        for s in self.sockets:
            s.listen(64)
            s.settimeout(0.2)
            self._threads.append(threading.Thread(target=self._accept, args=(s,), daemon=True))
        self.udp.settimeout(0.2)
        self._threads.append(threading.Thread(target=self._recv, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def _accept(self, s: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = s.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(str(addr[0]))
            conn.close()

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                self.udp.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams += 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1)
        for s in [*self.sockets, self.udp]:
            s.close()
