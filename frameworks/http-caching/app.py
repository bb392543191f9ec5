"""http-caching challenge: documents with ETag / Last-Modified and conditional requests (Flask)."""
import hashlib
import os
import threading
from datetime import datetime, timezone

from flask import Flask, Response, jsonify, request
from werkzeug.http import http_date

BUG = os.environ.get("CANDIDATE_BUG", "")


class KeepValidatorsResponse(Response):
    """Werkzeug strips "entity headers" (Last-Modified among them) from every 304.
    The brief wants the 304 to carry the same Last-Modified as the 200, so put it back."""

    def get_wsgi_headers(self, environ):
        headers = super().get_wsgi_headers(environ)
        if self.status_code == 304 and "Last-Modified" in self.headers:
            headers["Last-Modified"] = self.headers["Last-Modified"]
        return headers


app = Flask(__name__)
if BUG != "werkzeug-304-drops-last-modified":  # gap demo: the framework default
    app.response_class = KeepValidatorsResponse

_lock = threading.Lock()
_docs = {}  # name -> {"content": str, "etag": str (unquoted), "modified": datetime (whole seconds, UTC)}


def _etag_value(content):
    # strong opaque tag derived from the content
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:32]


def _validators(resp, doc, cache_control=False):
    resp.headers["ETag"] = '"%s"' % doc["etag"]
    resp.headers["Last-Modified"] = http_date(doc["modified"])
    if cache_control:
        resp.headers["Cache-Control"] = "no-cache"
    return resp


@app.get("/health")
def health():
    return jsonify(status="ok")


@app.get("/documents/<name>")
def get_document(name):
    with _lock:
        doc = _docs.get(name)
        doc = dict(doc) if doc else None
    if doc is None:
        if BUG == "star-on-missing" and request.headers.get("If-None-Match") == "*":
            return app.response_class(status=304)  # gap demo
        return jsonify(error="not found"), 404

    not_modified = False
    if "If-None-Match" in request.headers:
        inm = request.if_none_match  # werkzeug ETags (parses lists, W/ and *)
        if BUG == "inm-strong-compare":
            # ETags.__contains__ is the *strong* comparison: W/"x" never matches
            not_modified = doc["etag"] in inm
        else:
            not_modified = inm.star_tag or inm.contains_weak(doc["etag"])
    elif "If-Modified-Since" in request.headers:
        ims = request.if_modified_since  # None when the date is invalid
        if BUG == "ims-invalid-500":  # gap demo: strptime raises -> Flask's default 500
            ims = datetime.strptime(request.headers["If-Modified-Since"],
                                    "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
        if ims is not None:
            not_modified = doc["modified"] <= ims  # both whole seconds
            if BUG == "ims-any-304":  # gap demo
                not_modified = True

    if not_modified:
        resp = app.response_class(status=304)
    else:
        resp = jsonify(name=name, content=doc["content"])
    return _validators(resp, doc, cache_control=True)


@app.put("/documents/<name>")
def put_document(name):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        return jsonify(error='body must be {"content": "<string>"}'), 400
    content = body["content"]

    with _lock:
        current = _docs.get(name)
        if "If-Match" in request.headers:
            im = request.if_match
            # strong comparison; "*" matches any existing document; a missing document matches nothing
            ok = current is not None and (im.star_tag or im.contains(current["etag"]))
            if BUG == "if-match-string-compare":  # gap demo: breaks lists and "*"
                ok = current is not None and request.headers["If-Match"] == '"%s"' % current["etag"]
            if not ok:
                return jsonify(error="precondition failed"), 412
        doc = {
            "content": content,
            "etag": _etag_value(content),
            "modified": datetime.now(timezone.utc).replace(microsecond=0),
        }
        _docs[name] = doc
        doc = dict(doc)

    resp = jsonify(name=name, content=content)
    if BUG != "put-always-200":  # gap demo: jsonify's default status
        resp.status_code = 201 if current is None else 200
    if BUG == "put-no-validators":  # gap demo
        return resp
    return _validators(resp, doc)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")), threaded=True)
