"""Password hashes for Downlink's accounts: scrypt (stdlib hashlib) with a random salt per user.

A hash is stored as `scrypt$N$r$p$SALT$KEY` (SALT and KEY urlsafe base64 without padding), so the
cost parameters travel with each hash and can be raised later without breaking older entries.
Nothing here ever stores or logs a password in clear.
"""
import base64
import hashlib
import hmac
import re
import secrets

SCHEME = "scrypt"
# 2**15 x 8 x 128 bytes = 32 MiB per check; 0.85 s measured on a 2-core machine at load 20 (2**14:
# 0.23 s): slow enough to make guessing expensive, cheap enough for a login.
N, R, P = 2 ** 15, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_N = 2 ** 20  # refuse absurd costs read from a file (a check must not eat the server's memory)
_B64 = r"[A-Za-z0-9_-]+"
HASH = re.compile(rf"{SCHEME}\$(\d+)\$(\d+)\$(\d+)\$({_B64})\$({_B64})")  # fullmatch only


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password, salt, n, r, p, length):
    # hashlib's default maxmem (32 MiB) is just under what N=2**15, r=8 needs.
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=max(64 * 2 ** 20, 256 * n * r * p))


def hash_password(password, *, n=N, r=R, p=P):
    """A new hash of password, with a fresh random salt."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, KEY_BYTES)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


def parse_hash(encoded):
    """(n, r, p, salt, key) of a stored hash; ValueError saying what is wrong with it."""
    m = HASH.fullmatch(encoded) if isinstance(encoded, str) else None
    if not m:
        raise ValueError(f"not a password hash of the form {SCHEME}$N$r$p$SALT$KEY")
    n, r, p = (int(x) for x in m.group(1, 2, 3))
    if n < 2 or n & (n - 1) or n > MAX_N or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError(f"scrypt cost out of range (N={n}, r={r}, p={p})")
    salt, key = _unb64(m.group(4)), _unb64(m.group(5))
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("salt or key too short")
    return n, r, p, salt, key


def is_hash(encoded):
    try:
        parse_hash(encoded)
        return True
    except ValueError:
        return False


def encodable(text):
    """Whether text can be hashed: a str that is valid Unicode (JSON may carry lone surrogates such
    as "\\ud800", which UTF-8 cannot encode)."""
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def verify_password(password, encoded):
    """Whether password matches the stored hash (constant-time compare; False for a bad hash or a
    password that is not valid Unicode)."""
    try:
        n, r, p, salt, key = parse_hash(encoded)
    except ValueError:
        return False
    if not encodable(password or ""):
        return False
    return hmac.compare_digest(_scrypt(password or "", salt, n, r, p, len(key)), key)


_dummy = None


def burn_time(password):
    """Spend the same time as a real check, for a user that does not exist (so a login's timing
    does not tell which names are accounts)."""
    global _dummy
    if _dummy is None:
        _dummy = hash_password("not-a-password")
    verify_password(password, _dummy)


def credential_tag(encoded, secret):
    """A short tag of a stored hash, for a token to carry: keyed with the server's secret (so a token
    says nothing about the hash) and different for every new hash, so a password reset (a new salt)
    makes the tokens issued before it fail their check."""
    digest = hmac.new(secret.encode("utf-8") if isinstance(secret, str) else bytes(secret),
                      b"downlink-session\0" + encoded.encode("ascii"), hashlib.sha256).digest()
    return _b64(digest[:16])


def generate_password():
    """A new random password (24 characters, 144 bits)."""
    return secrets.token_urlsafe(18)
