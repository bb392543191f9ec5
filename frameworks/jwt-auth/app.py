"""jwt-auth: issue and verify HS256 JWTs (FastAPI + PyJWT, configured strictly)."""
import hashlib
import hmac
import os
import secrets
import threading
import time

import jwt
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

BUG = os.environ.get("CANDIDATE_BUG", "")

JWT_SECRET = os.environ["JWT_SECRET"]
JWT_ISSUER = os.environ["JWT_ISSUER"]
JWT_AUDIENCE = os.environ["JWT_AUDIENCE"]
TOKEN_TTL = 300  # seconds
ALGORITHM = "HS256"

app = FastAPI()
bearer = HTTPBearer()  # missing/non-Bearer Authorization -> 401, WWW-Authenticate: Bearer

lock = threading.Lock()
users = {}  # username -> (salt, pbkdf2 hash)


class Credentials(BaseModel):
    username: str
    password: str


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000)


DUMMY_SALT = secrets.token_bytes(16)
DUMMY_HASH = hash_password(secrets.token_hex(16), DUMMY_SALT)


def invalid_token() -> HTTPException:
    if BUG == "bare-bearer-challenge":
        # Bug: the FastAPI security tutorial's "Could not validate credentials" exception,
        # whose challenge is a bare "Bearer" without error="invalid_token".
        return HTTPException(
            status_code=401,
            detail="Could not validate credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return HTTPException(
        status_code=401,
        detail="invalid token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def verify(token: str) -> dict:
    decode_kwargs = dict(
        key=JWT_SECRET,
        algorithms=[ALGORITHM],  # only HS256: rejects none/None/NONE, RS256, ...
        audience=JWT_AUDIENCE,
        issuer=JWT_ISSUER,
        options={
            "require": ["exp", "iat", "iss", "aud", "sub"],
            "verify_signature": True,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": True,
            "verify_iss": True,
        },
    )
    if BUG == "no-signature-check":
        # Gap-revealing bug: signature verification switched off (claims still checked).
        decode_kwargs["options"]["verify_signature"] = False
    if BUG == "no-issuer-check":
        # Gap-revealing bug: issuer= left out; PyJWT then does not look at iss at all.
        del decode_kwargs["issuer"]
        decode_kwargs["options"]["require"].remove("iss")
    try:
        # Check the header's alg ourselves too, before any key is used.
        if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
            raise invalid_token()
        claims = jwt.decode(token, **decode_kwargs)
    except jwt.PyJWTError:
        raise invalid_token() from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise invalid_token()
    return claims


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/auth/register", status_code=201)
def register(body: Credentials):
    if not body.username or not body.password:
        raise HTTPException(status_code=400, detail="username and password are required")
    salt = secrets.token_bytes(16)
    pw_hash = hash_password(body.password, salt)
    with lock:
        if body.username in users:
            raise HTTPException(status_code=409, detail="username already taken")
        users[body.username] = (salt, pw_hash)
    return {"username": body.username}


@app.post("/auth/login")
def login(body: Credentials):
    with lock:
        record = users.get(body.username)
    salt, expected = record if record else (DUMMY_SALT, DUMMY_HASH)
    ok = hmac.compare_digest(hash_password(body.password, salt), expected)
    if record is None or not ok:
        raise HTTPException(
            status_code=401,
            detail="invalid username or password",
        )
    now = int(time.time())
    claims = {
        "sub": body.username,
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "exp": now + TOKEN_TTL,
    }
    token = jwt.encode(claims, JWT_SECRET, algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL}


if BUG == "missing-header-422":
    # Gap-revealing bug: reads the header as a required FastAPI Header() parameter, so a request
    # without Authorization gets FastAPI's default 422 validation error, not a 401 challenge.
    @app.get("/profile")
    def profile(authorization: str = Header()):
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise invalid_token()
        return {"username": verify(token.strip())["sub"]}

else:

    @app.get("/profile")
    def profile(creds: HTTPAuthorizationCredentials = Depends(bearer)):
        claims = verify(creds.credentials)
        return {"username": claims["sub"]}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]))
