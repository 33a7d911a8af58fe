"""The gate every signing key passes at signing time: in the ledger, active, right purpose.

The device's cell chooses the key; this decides whether that key may sign at all. A
key the ledger does not know never signs: nothing on the token is trusted by default.
"""

from __future__ import annotations

from signer.hsm.token import TokenKey
from signer.service.services import Services
from signer.smki.lifecycle import KeyPurpose, KeyState


def refusal(svc: Services, key: TokenKey, purpose: KeyPurpose) -> str | None:
    """Why this key may not sign for this purpose now, or None if it may."""
    if not key.can_sign:
        return f"key {key.label!r} is disabled on the token (CKA_SIGN false: retired)"
    entry = svc.ledger.get(svc.db, svc.token.token_label, key.key_id)
    if entry is None:
        return (
            f"key {key.label!r} is not in the key ledger; a security team activates it "
            "with `signer keys activate`"
        )
    state, recorded = entry
    if state is not KeyState.ACTIVE:
        return f"key {key.label!r} is {state}"
    if recorded is not purpose:
        return f"key {key.label!r} is for {recorded}, not {purpose}"
    return None
