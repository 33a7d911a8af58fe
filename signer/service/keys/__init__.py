"""The Supplier's signing keys, one module per question.

- `selection`: which key a device trusts (its Supplier trust anchor cell), and whether that
  key may sign now.
- `naming`: a key as the CLI and configuration name it (a label or a PKCS#11 URI).
- `lifecycle`: generate, import, request and install a certificate, activate, retire.
- `operations`: the key-operation ledger and the audit records of each operation.
- `views`: what security teams may see of the keys (`signer keys list`, rotation report).
"""
