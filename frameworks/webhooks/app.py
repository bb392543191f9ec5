"""Payouts API that sends and receives Standard Webhooks 1.0 signed webhooks.

Outbound: POST /payouts stores the payout in memory, answers 201 and hands a
payout.created event to a background dispatcher, which delivers it to
$WEBHOOK_URL with retries (exponential backoff, Retry-After, 410 Gone, no
redirects).

Inbound: POST /webhooks verifies the Standard Webhooks signature over the raw
body with $INBOUND_SECRET, refuses stale timestamps, deduplicates by
webhook-id and applies deposit.succeeded events to in-memory balances.

CANDIDATE_BUG (env) switches on one deliberate bug; see README.md.
"""

import base64
import email.utils
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import requests
from flask import Flask, jsonify, request

BUG = os.environ.get("CANDIDATE_BUG", "")

PORT = int(os.environ.get("PORT", "8080"))
WEBHOOK_URL = os.environ["WEBHOOK_URL"]
WEBHOOK_SECRET = os.environ["WEBHOOK_SECRET"]
INBOUND_SECRET = os.environ["INBOUND_SECRET"]
RETRY_BASE_MS = int(os.environ.get("WEBHOOK_RETRY_BASE_MS", "1000"))
MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "5"))

ATTEMPT_TIMEOUT_S = 5  # an attempt not answered within 5 seconds has failed
TIMESTAMP_TOLERANCE_S = 5 * 60  # inbound timestamps may be off by at most 5 minutes

log = logging.getLogger("webhooks")


# --------------------------------------------------------------------------
# Standard Webhooks signatures
# --------------------------------------------------------------------------

def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part of the secret after `whsec_`."""
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    return base64.b64decode(secret)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_matches(key: bytes, msg_id: str, timestamp: str, body: bytes,
                      header: str) -> bool:
    """True when any one of the space-separated `v1,` signatures verifies."""
    expected = sign(key, msg_id, timestamp, body).encode()
    candidates = header.split()
    if BUG == "first-signature-only":
        candidates = candidates[:1]
    for candidate in candidates:
        if not candidate.startswith("v1,"):
            continue  # unknown version, e.g. a v1a asymmetric signature
        if hmac.compare_digest(candidate.encode(), expected):
            return True
    return False


# --------------------------------------------------------------------------
# Outbound delivery
# --------------------------------------------------------------------------

@dataclass(order=True)
class _Scheduled:
    due: float
    seq: int
    delivery: "Delivery" = field(compare=False)


@dataclass
class Delivery:
    msg_id: str
    body: bytes
    attempts: int = 0
    frozen_headers: dict | None = None  # only used by CANDIDATE_BUG=frozen-timestamp


class Dispatcher:
    """Runs delivery attempts on a small thread pool.

    Waiting between attempts does not hold a worker: a failed attempt is put
    back on a time-ordered heap, and a scheduler thread submits it again when
    it is due.
    """

    def __init__(self, url: str, secret: str, base_ms: int, max_attempts: int):
        self.url = url
        self.key = secret_key(secret)
        self.base_s = base_ms / 1000.0
        self.max_attempts = max_attempts
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="webhook")
        self.session = requests.Session()
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        threading.Thread(target=self._scheduler, name="webhook-scheduler",
                         daemon=True).start()

    def enqueue(self, event: dict) -> None:
        body = json.dumps(event).encode()
        delivery = Delivery(msg_id="msg_" + uuid.uuid4().hex, body=body)
        self._schedule(delivery, 0.0)

    def _schedule(self, delivery: Delivery, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Scheduled(time.monotonic() + delay,
                                                  next(self._seq), delivery))
            self._cond.notify()

    def _scheduler(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].due > time.monotonic():
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                item = heapq.heappop(self._heap)
            self.pool.submit(self._attempt, item.delivery)

    def _headers(self, delivery: Delivery) -> dict:
        if BUG == "frozen-timestamp":
            # Signed once, when the delivery was first attempted.
            if delivery.frozen_headers is None:
                ts = int(time.time())
                delivery.frozen_headers = {
                    "Content-Type": "application/json",
                    "webhook-id": delivery.msg_id,
                    "webhook-timestamp": str(ts),
                    "webhook-signature": sign(self.key, delivery.msg_id, ts, delivery.body),
                }
            return delivery.frozen_headers
        ts = int(time.time())  # the time of this attempt
        return {
            "Content-Type": "application/json",
            "webhook-id": delivery.msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(self.key, delivery.msg_id, ts, delivery.body),
        }

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        retry_after = None
        try:
            resp = self.session.post(
                self.url,
                data=delivery.body,
                headers=self._headers(delivery),
                timeout=ATTEMPT_TIMEOUT_S,
                allow_redirects=(BUG == "follow-redirects"),
            )
            status = resp.status_code
            resp.close()
        except requests.RequestException as exc:
            log.warning("webhook %s attempt %d failed: %s",
                        delivery.msg_id, delivery.attempts, exc)
            status = None
        else:
            if 200 <= status < 300:
                log.info("webhook %s delivered on attempt %d",
                         delivery.msg_id, delivery.attempts)
                return
            log.warning("webhook %s attempt %d answered %d",
                        delivery.msg_id, delivery.attempts, status)
            if status == 410:
                log.warning("webhook %s: endpoint gone, delivery ended", delivery.msg_id)
                return
            if status == 429:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))

        limit = self.max_attempts + 1 if BUG == "retries-not-attempts" else self.max_attempts
        if delivery.attempts >= limit:
            log.error("webhook %s abandoned after %d attempts",
                      delivery.msg_id, delivery.attempts)
            return
        delay = self.base_s * (2 ** (delivery.attempts - 1))
        delay += random.uniform(0, delay * 0.1)  # jitter only ever adds
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._schedule(delivery, delay)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------

lock = threading.Lock()
payouts: dict[str, dict] = {}
balances: dict[str, int] = {}
processed_ids: set[str] = set()

dispatcher = Dispatcher(WEBHOOK_URL, WEBHOOK_SECRET, RETRY_BASE_MS, MAX_ATTEMPTS)
inbound_key = secret_key(INBOUND_SECRET)

app = Flask(__name__)


def error(status: int, message: str):
    return jsonify({"error": message}), status


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rfc3339_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@app.get("/health")
def health():
    return jsonify({"status": "ok"})


@app.post("/payouts")
def create_payout():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object")
    account, amount = body.get("account"), body.get("amount")
    if not isinstance(account, str) or not account:
        return error(400, "account must be a non-empty string")
    if not is_int(amount) or amount <= 0:
        return error(400, "amount must be a positive integer")

    payout = {"id": "po_" + uuid.uuid4().hex, "account": account, "amount": amount}
    with lock:
        payouts[payout["id"]] = payout
    dispatcher.enqueue({"type": "payout.created", "timestamp": rfc3339_now(), "data": payout})
    return jsonify(payout), 201


@app.post("/webhooks")
def receive_webhook():
    msg_id = request.headers.get("webhook-id")
    timestamp = request.headers.get("webhook-timestamp")
    signature = request.headers.get("webhook-signature")
    if not msg_id or not timestamp or not signature:
        return error(400, "missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(timestamp)
    except ValueError:
        return error(400, "invalid webhook-timestamp")
    if abs(time.time() - ts) > TIMESTAMP_TOLERANCE_S:
        return error(400, "webhook-timestamp outside the tolerance window")

    if BUG == "reserialized-body":
        signed_body = json.dumps(request.get_json(force=True, silent=True)).encode()
    else:
        signed_body = request.get_data()
    if not signature_matches(inbound_key, msg_id, timestamp, signed_body, signature):
        return error(401, "no signature verifies")

    try:
        event = json.loads(request.get_data())
    except ValueError:
        return error(400, "body is not JSON")
    if not isinstance(event, dict):
        return error(400, "body must be a JSON object")

    credit = None
    if event.get("type") == "deposit.succeeded":
        data = event.get("data")
        if (not isinstance(data, dict) or not isinstance(data.get("account"), str)
                or not is_int(data.get("amount"))):
            return error(400, "deposit.succeeded needs data.account and integer data.amount")
        credit = (data["account"], data["amount"])

    with lock:
        if msg_id in processed_ids:
            return "", 204  # already processed: acknowledge, apply nothing
        processed_ids.add(msg_id)
        if credit is not None:
            account, amount = credit
            balances[account] = balances.get(account, 0) + amount
    return "", 204


@app.get("/accounts/<account>")
def get_account(account):
    with lock:
        balance = balances.get(account, 0)
    return jsonify({"account": account, "balance": balance})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=PORT, threaded=True)
