#!/usr/bin/env python3
"""Verify a kefu webhook delivery (docs/kefu-protocol.md, "Webhooks").

The receiver's side of the recipe, standard library only. In a web framework call
`verify(secret, headers["X-Kefu-Timestamp"], headers["X-Kefu-Signature"], raw_body)` with the
raw request body (before any JSON parsing). As a command (used by tests/kefu_webhooks.rs):

    KEFU_WEBHOOK_SECRET=... KEFU_TIMESTAMP=... KEFU_SIGNATURE=v1=... \
        python3 verify_webhook.py < body.json

exits 0 and prints "ok" for a genuine delivery, 1 otherwise.
"""
import hashlib
import hmac
import os
import sys
import time

# Refuse deliveries older than this (a captured request replayed later).
TOLERANCE_SECS = 300


def verify(secret: str, timestamp: str, signature: str, body: bytes, now=None) -> bool:
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > TOLERANCE_SECS:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    expected = "v1=" + mac.hexdigest()
    # Constant-time comparison: no timing hints about how much of a guess was right.
    return hmac.compare_digest(expected, signature)


if __name__ == "__main__":
    ok = verify(
        os.environ["KEFU_WEBHOOK_SECRET"],
        os.environ["KEFU_TIMESTAMP"],
        os.environ["KEFU_SIGNATURE"],
        sys.stdin.buffer.read(),
    )
    print("ok" if ok else "bad signature")
    sys.exit(0 if ok else 1)
