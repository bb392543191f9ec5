"""behind-proxy: a small Flask service that runs behind a reverse proxy and gzips what it can.

A WSGI middleware (``TrustedProxyMiddleware``) decides, per request, whether the connection comes from
one of ``TRUSTED_PROXIES``. Only then does it read ``Forwarded`` (RFC 7239) or, when that is absent,
``X-Forwarded-For`` / ``-Proto`` / ``-Host``, and it rewrites ``REMOTE_ADDR``, ``wsgi.url_scheme`` and
``HTTP_HOST`` in the environ. The views then use Flask's ordinary ``request.remote_addr``,
``request.scheme``, ``request.host`` and ``url_for(..., _external=True)``.
"""

import gzip
import ipaddress
import itertools
import os
import re
import sys
import threading

from flask import Flask, abort, jsonify, request, url_for

CANDIDATE_BUG = os.environ.get("CANDIDATE_BUG", "")

# ---------------------------------------------------------------------------------------------------
# Trusted proxies
# ---------------------------------------------------------------------------------------------------


def parse_trusted_proxies(value):
    networks = []
    for part in (value or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            sys.exit(f"TRUSTED_PROXIES: {part!r} is not an IP address or CIDR range")
    return networks


def parse_ip(value):
    """An IP address from a bare address, ``1.2.3.4:port``, ``[v6]`` or ``[v6]:port``; else None."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        rest = value[end + 1:]
        if rest and not re.fullmatch(r":\d{1,5}", rest):
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has several colons)
        value, _, port = value.partition(":")
        if not port.isdigit():
            return None
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip


# host or IPv4 or [IPv6], optional port (the same characters Werkzeug accepts in a Host header)
_HOST_RE = re.compile(r"(?:[a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::[1-9][0-9]{0,4})?", re.I | re.A)


def valid_host(value):
    return bool(value) and _HOST_RE.fullmatch(value) is not None


def split_list(value):
    """A comma-separated header (several header lines are already joined with commas)."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Unquoted values should be tokens; senders also write "for=192.0.2.1:8080" or "host=a.example:8443"
# unquoted, so ':' '[' ']' are tolerated too.
_VALUE_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]+")
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _split_outside_quotes(value, sep):
    """Split on ``sep`` except inside quoted strings; None if a quote is left open."""
    parts, start, in_quotes, i = [], 0, False, 0
    while i < len(value):
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == sep:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        return None
    parts.append(value[start:])
    return parts


def parse_forwarded_element(text):
    """One ``Forwarded`` element (``for=...;proto=...;host=...``) as a dict, or None if malformed."""
    pairs = _split_outside_quotes(text, ";")
    if pairs is None:
        return None
    element = {}
    for pair in pairs:
        pair = pair.strip(" \t")
        if not pair:
            continue
        name, eq, raw = pair.partition("=")
        name, raw = name.strip(" \t").lower(), raw.strip(" \t")
        if not eq or not _TOKEN_RE.fullmatch(name) or name in element:
            return None
        if raw.startswith('"'):
            m = _QUOTED_RE.fullmatch(raw)
            if m is None:
                return None
            element[name] = re.sub(r"\\(.)", r"\1", m.group(1))
        elif _VALUE_RE.fullmatch(raw):
            element[name] = raw
        else:
            return None
    return element or None


def parse_forwarded(value):
    """RFC 7239 ``Forwarded``: its elements left to right, each a dict of lower-cased parameter
    names to (unquoted) values. An element that can't be parsed is None, so that garbage stops the
    walk from the right instead of being skipped over.
    """
    elements = _split_outside_quotes(value, ",")
    if elements is None:
        # An unbalanced quote: keep what is unambiguous, the elements right of the last quote.
        head, _, tail = value.rpartition('"')
        tail_elements = tail.split(",")[1:]
        return [None] + [parse_forwarded_element(e) for e in tail_elements if e.strip(" \t")]
    return [parse_forwarded_element(e) for e in elements if e.strip(" \t")]


class TrustedProxyMiddleware:
    """Believe forwarding headers only from trusted peers; rewrite the environ accordingly.

    The client is the rightmost hop that is not a trusted proxy (everything left of it was written by
    the client itself). The scheme and host are those that the first trusted proxy (the one the client
    connected to) recorded for that hop.
    """

    def __init__(self, wsgi_app, trusted):
        self.wsgi_app = wsgi_app
        self.trusted = trusted

    def is_trusted(self, ip):
        return ip is not None and any(ip in net for net in self.trusted if net.version == ip.version)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        if CANDIDATE_BUG == "trust-any-peer" or self.is_trusted(parse_ip(peer)):
            self.apply_forwarded(environ, peer)
        else:
            # Not a proxy: forwarding headers are the client's own words. The scheme is that of
            # this very connection (plain HTTP), the host the Host header's.
            environ["wsgi.url_scheme"] = "http"
        return self.wsgi_app(environ, start_response)

    def hops(self, environ):
        """[(for, proto, host)] left to right, from Forwarded if present, else X-Forwarded-*."""
        forwarded = environ.get("HTTP_FORWARDED", "").strip()
        if forwarded:
            hops = []
            for element in parse_forwarded(forwarded):
                if element is None:
                    hops.append((None, None, None))
                else:
                    hops.append((element.get("for"), element.get("proto"), element.get("host")))
            return hops

        xff = split_list(environ.get("HTTP_X_FORWARDED_FOR"))
        protos = split_list(environ.get("HTTP_X_FORWARDED_PROTO"))
        hosts = [] if CANDIDATE_BUG == "no-forwarded-host" else split_list(environ.get("HTTP_X_FORWARDED_HOST"))
        if not xff:
            # No address chain; a lone proxy may still say what scheme/host it was asked for.
            if protos or hosts:
                return [(None, protos[-1] if protos else None, hosts[-1] if hosts else None)]
            return []

        def aligned(values, index):
            # X-Forwarded-Proto/Host values line up with X-Forwarded-For from the right; when a
            # proxy overwrote rather than appended, there are fewer of them: take the leftmost.
            if not values:
                return None
            pos = len(values) - (len(xff) - index)
            return values[max(pos, 0)]

        return [(addr, aligned(protos, i), aligned(hosts, i)) for i, addr in enumerate(xff)]

    def apply_forwarded(self, environ, peer):
        hops = self.hops(environ)
        if not hops:
            return

        client_ip = None
        index = 0
        if CANDIDATE_BUG == "leftmost-xff":
            index = 0
            client_ip = parse_ip(hops[0][0])
        else:
            last_trusted = parse_ip(peer)
            for index in range(len(hops) - 1, -1, -1):
                ip = parse_ip(hops[index][0])
                if ip is None:
                    # "unknown", an obfuscated name or garbage: the client can't be identified
                    # beyond the last proxy we trust.
                    client_ip = last_trusted
                    break
                if not self.is_trusted(ip):
                    client_ip = ip
                    break
                last_trusted = ip
            else:
                # every hop is one of our proxies: the leftmost is as far as it goes
                index = 0
                client_ip = last_trusted

        _, proto, host = hops[index]
        if client_ip is not None:
            environ["REMOTE_ADDR"] = str(client_ip)
        proto = (proto or "").strip().lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        else:
            environ["wsgi.url_scheme"] = "http"
        host = (host or "").strip()
        if valid_host(host):
            environ["HTTP_HOST"] = host


# ---------------------------------------------------------------------------------------------------
# Application
# ---------------------------------------------------------------------------------------------------

app = Flask(__name__)
app.wsgi_app = TrustedProxyMiddleware(app.wsgi_app, parse_trusted_proxies(os.environ.get("TRUSTED_PROXIES")))

CATALOG = [
    {"id": i, "sku": f"SKU-{i:05d}", "name": f"Catalog item {i}", "price_cents": 199 + (i * 37) % 5000}
    for i in range(1, 201)
]

_links = {}
_link_ids = itertools.count(1)
_links_lock = threading.Lock()


@app.get("/health")
def health():
    return jsonify(status="ok")


@app.get("/whoami")
def whoami():
    return jsonify(ip=request.remote_addr, proto=request.scheme, host=request.host)


@app.post("/links")
def create_link():
    with _links_lock:
        link_id = next(_link_ids)
        _links[link_id] = True
    url = url_for("get_link", link_id=link_id, _external=True)
    response = jsonify({"id": link_id, "self": url})
    response.status_code = 201
    response.headers["Location"] = url
    return response


@app.get("/links/<int:link_id>")
def get_link(link_id):
    with _links_lock:
        exists = link_id in _links
    if not exists:
        abort(404)
    return jsonify({"id": link_id, "self": url_for("get_link", link_id=link_id, _external=True)})


@app.get("/catalog")
def catalog():
    return jsonify(items=CATALOG)


# ---------------------------------------------------------------------------------------------------
# Compression
# ---------------------------------------------------------------------------------------------------

GZIP_MIN_SIZE = 500
COMPRESSIBLE = ("application/json", "text/")


def accepts_gzip():
    if CANDIDATE_BUG == "gzip-substring":
        return "gzip" in request.headers.get("Accept-Encoding", "")
    # Werkzeug's Accept: honours q-values (gzip;q=0), '*', and prefers an explicit gzip over '*'.
    return request.accept_encodings["gzip"] > 0


@app.after_request
def compress(response):
    if (
        response.direct_passthrough
        or response.is_streamed
        or "Content-Encoding" in response.headers
        or not (200 <= response.status_code < 300)
        or response.status_code in (204, 206)
        or not (response.mimetype or "").startswith(COMPRESSIBLE)
    ):
        return response
    data = response.get_data()
    if len(data) < GZIP_MIN_SIZE:
        return response
    # The representation now depends on Accept-Encoding, whichever one this client gets.
    response.vary.add("Accept-Encoding")
    if accepts_gzip():
        response.set_data(gzip.compress(data))
        response.headers["Content-Encoding"] = "gzip"
    return response


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), threaded=True)
