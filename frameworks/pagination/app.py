"""pagination challenge: keyset (cursor) pagination of articles (FastAPI + uvicorn)."""
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import uuid
from typing import Optional
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

BUG = os.environ.get("CANDIDATE_BUG", "")

app = FastAPI()
_lock = threading.Lock()
_articles = []  # dicts with id/title/score/tag and a private creation sequence "_seq"
_seq = 0
_SECRET = secrets.token_bytes(32)


class ArticleIn(BaseModel):
    title: str
    score: int
    tag: str


def _public(a):
    return {"id": a["id"], "title": a["title"], "score": a["score"], "tag": a["tag"]}


def _b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _sign(payload):
    return _b64(payload) + "." + _b64(hmac.new(_SECRET, payload, hashlib.sha256).digest()[:16])


def _make_cursor(last):
    # position = sort key of the last item served: (score, creation sequence)
    payload = json.dumps([last["score"], last["_seq"]], separators=(",", ":")).encode()
    if BUG == "unsigned-cursor":  # gap demo: plain base64 of json.dumps, anyone can forge a position
        return _b64(json.dumps([last["score"], last["_seq"]]).encode())
    return _sign(payload)


def _read_cursor(cursor):
    """(score, seq) of the position, or None when the cursor was not issued by this service."""
    try:
        if BUG == "unsigned-cursor":
            score, seq = json.loads(_unb64(cursor))
            return score, seq
        payload = _unb64(cursor.split(".")[0])
        # compare the whole string: base64 decoding alone would accept some changed
        # characters (unused low bits of the last symbol) as the same bytes
        if not hmac.compare_digest(cursor.encode(), _sign(payload).encode()):
            return None
        score, seq = json.loads(payload)
        if type(score) is not int or type(seq) is not int:
            return None
        return score, seq
    except Exception:
        return None


def _bad(msg):
    return JSONResponse({"error": msg}, status_code=400)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/articles", status_code=201)
def create_article(body: ArticleIn):
    global _seq
    with _lock:
        _seq += 1
        a = {"id": str(uuid.uuid4()), "title": body.title, "score": body.score, "tag": body.tag, "_seq": _seq}
        _articles.append(a)
    return _public(a)


if BUG == "limit-422":
    # FastAPI's own validation: out-of-range or non-numeric limit -> its default 422, not 400
    @app.get("/articles")
    def list_articles_bug(request: Request, tag: Optional[str] = None,
                          limit: int = Query(10, ge=1, le=100), cursor: Optional[str] = None):
        return _list(request, tag, limit, cursor)
else:
    @app.get("/articles")
    def list_articles(request: Request, tag: Optional[str] = None,
                      limit: Optional[str] = None, cursor: Optional[str] = None):
        if limit is None:
            n = 20 if BUG == "default-limit-20" else 10  # gap demo
        elif re.fullmatch(r"[0-9]{1,3}", limit) and 1 <= int(limit) <= (99 if BUG == "limit-off-by-one" else 100):
            n = int(limit)
        else:
            return _bad("limit must be a whole number from 1 to 100")
        return _list(request, tag, n, cursor)


def _list(request, tag, limit, cursor):
    after = None
    if cursor is not None:
        after = _read_cursor(cursor)
        if after is None:
            return _bad("invalid cursor")

    with _lock:
        rows = [a for a in _articles if tag is None or a["tag"] == tag]
    rows.sort(key=lambda a: (-a["score"], a["_seq"]))
    if BUG == "ties-newest-first":  # gap demo: equal scores newest first (keyset kept consistent)
        rows.sort(key=lambda a: (-a["score"], -a["_seq"]))
    if after is not None:
        s, q = after
        if BUG == "ties-newest-first":
            rows = [a for a in rows if a["score"] < s or (a["score"] == s and a["_seq"] < q)]
        else:
            rows = [a for a in rows if a["score"] < s or (a["score"] == s and a["_seq"] > q)]

    page = rows[:limit]
    has_more = len(rows) > limit
    headers = {}
    next_cursor = None
    if has_more:
        next_cursor = _make_cursor(page[-1])
        params = {}
        if tag is not None:
            params["tag"] = tag
        params["limit"] = limit
        params["cursor"] = next_cursor
        url = str(request.url.replace(query=urlencode(params)))
        headers["Link"] = '<%s>; rel="next"' % url
    return JSONResponse({"items": [_public(a) for a in page], "next_cursor": next_cursor}, headers=headers)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
