"""The role policy file: what it accepts, what it refuses (loudly, naming the entry), matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from signer.api.auth import RPC_NAMES, Policy
from signer.api.handlers import Rpc
from signer.caller import Caller
from signer.errors import ConfigurationError
from tests.support.constants import ROOT

ROLES_TABLE = """
[roles]
manufacturer = ["VerifyManufacturer"]
supplier = ["Resign", "ListKeys"]
ops = ["ListKeys"]
"""


def parse(clients: str, roles: str = ROLES_TABLE) -> Policy:
    return Policy.parse(roles + clients, source="test.toml")


def caller(
    identity: str = "CN=acme,O=Acme", cn: str | None = "acme", alt_names: tuple[str, ...] = ()
) -> Caller:
    return Caller(identity=identity, request_id="r", common_name=cn, alt_names=alt_names)


def rpc(method: str, service: str = "signer.v1.FirmwareSigner") -> Rpc:
    return Rpc(f"/{service}/{method}", "unary")


def test_the_shipped_policy_loads_and_decides_every_rpc() -> None:
    policy = Policy.load(ROOT / "deploy/policy.example.toml")
    for name in RPC_NAMES:
        assert policy.roles_for(name), f"the shipped policy grants {name} to no role"
    assert policy.roles_for("VerifyManufacturer") == ("manufacturer",)
    assert policy.roles_of(caller("CN=delivery-desk", "delivery-desk")) == (
        "manufacturer",
        "supplier",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[roles]\nmanufacturer = [\n", "policy test.toml: invalid TOML"),
        ("[clients]\ncn = 'a'\n", "no [roles] table"),
        ("roles = 3\n", "roles must be a table"),
        ("[roles]\nadmin = ['ListKeys']\n", "[roles] admin: unknown role 'admin'"),
        (
            "[roles]\nsupplier = ['Resgn']\n",
            "[roles] supplier: unknown RPC 'Resgn' (did you mean 'Resign'?)",
        ),
        ("[roles]\nsupplier = 'Resign'\n", "[roles] supplier: give a list of RPC names"),
        ("[roles]\nops = ['grpc.health.v1.Health/Check']\n", "unknown RPC"),
        (ROLES_TABLE + "[[client]]\ncn = 'a'\nroles = ['ops']\n", "unknown key 'client'"),
        (ROLES_TABLE + "[clients]\ncn = 'a'\nroles = ['ops']\n", "must be [[clients]] entries"),
        (
            ROLES_TABLE + "[[clients]]\nroles = ['ops']\n",
            "[[clients]] entry 1: give exactly one of cn, san or subject",
        ),
        (
            ROLES_TABLE + "[[clients]]\ncn = 'a'\nroles = ['ops']\n[[clients]]\ncn = 'b'\n"
            "san = 'DNS:b'\nroles = ['ops']\n",
            "[[clients]] entry 2: give exactly one of cn, san or subject, not cn and san",
        ),
        (ROLES_TABLE + "[[clients]]\ncn = ''\nroles = ['ops']\n", "cn must be a non-empty string"),
        (
            ROLES_TABLE + "[[clients]]\ncn = 'a'\nrole = ['ops']\n",
            "[[clients]] entry 1: unknown key 'role'",
        ),
        (
            ROLES_TABLE + "[[clients]]\ncn = 'a'\nroles = []\n",
            '[[clients]] entry 1 (cn = "a"): roles must be a non-empty list',
        ),
        (
            ROLES_TABLE + "[[clients]]\ncn = 'a'\nroles = ['suplier']\n",
            """[[clients]] entry 1 (cn = "a"): unknown role 'suplier' (did you mean 'supplier'?)""",
        ),
        (
            ROLES_TABLE + "[[clients]]\ncn = 'a'\nroles = ['auditor']\n",
            """(cn = "a"): role 'auditor' is not defined in [roles]""",
        ),
        (
            ROLES_TABLE + "[[clients]]\nsan = 'backoffice.example'\nroles = ['ops']\n",
            'san = "backoffice.example"): san must start with one of DNS:, URI:, email:, IP:',
        ),
        (
            ROLES_TABLE + "[[clients]]\nsan = 'IP:10.0.0.300'\nroles = ['ops']\n",
            "'10.0.0.300' is not an IP address",
        ),
        (
            ROLES_TABLE + "[[clients]]\nsubject = 'CN=a, O=b'\nroles = ['ops']\n",
            'subject = "CN=a, O=b"): subject is not an RFC 4514 name',
        ),
        (
            ROLES_TABLE + "[[clients]]\ncn = 'a'\nroles = ['ops']\n[[clients]]\ncn = 'a'\n"
            "roles = ['supplier']\n",
            '[[clients]] entry 2 (cn = "a") repeats [[clients]] entry 1 (cn = "a")',
        ),
    ],
)
def test_a_policy_that_does_not_make_sense_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        Policy.parse(text, source="test.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("policy test.toml: ")


def test_an_unreadable_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read policy .*missing\.toml"):
        Policy.load(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[roles]")
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        Policy.load(binary)


def test_cn_san_and_subject_match_exactly() -> None:
    policy = parse("""
[[clients]]
cn = "acme"
roles = ["manufacturer"]
[[clients]]
san = "URI:spiffe://supplier.example/campaigns"
roles = ["supplier"]
[[clients]]
subject = "CN=desk,OU=Firmware,O=Supplier"
roles = ["ops"]
""")
    assert policy.roles_of(caller()) == ("manufacturer",)
    assert policy.roles_of(caller("CN=Acme,O=Acme", "Acme")) == ()  # CN matching is exact
    assert policy.roles_of(
        caller("CN=x", "x", ("DNS:a.example", "URI:spiffe://supplier.example/campaigns"))
    ) == ("supplier",)
    assert policy.roles_of(caller("CN=desk,OU=Firmware,O=Supplier", "desk")) == ("ops",)
    assert policy.roles_of(caller("CN=desk,OU=Firmware,O=Other", "desk")) == ()
    # several entries matching one client: all of their roles
    both = caller("CN=acme,O=Acme", "acme", ("URI:spiffe://supplier.example/campaigns",))
    assert policy.roles_of(both) == ("manufacturer", "supplier")


def test_subjects_and_ip_addresses_are_compared_in_the_callers_spelling() -> None:
    policy = parse("""
[[clients]]
subject = "emailAddress=desk@supplier.example,serialNumber=42,CN=desk,O=Supplier\\\\, Ltd"
roles = ["ops"]
[[clients]]
san = "IP:2001:0db8:0000::0001"
roles = ["supplier"]
""")
    # as signer.api.callctx spells them: cryptography's RFC 4514 form, compressed IPv6
    identity = "1.2.840.113549.1.9.1=desk@supplier.example,2.5.4.5=42,CN=desk,O=Supplier\\, Ltd"
    assert policy.clients[0].value == identity
    assert policy.roles_of(caller(identity, "desk")) == ("ops",)
    assert policy.roles_of(caller("CN=x", "x", ("IP:2001:db8::1",))) == ("supplier",)


def test_refusals_name_the_roles_needed_and_held() -> None:
    policy = parse('[[clients]]\ncn = "acme"\nroles = ["manufacturer"]\n')
    acme, nobody = caller(), caller("CN=nobody", "nobody")
    assert policy.refusal(acme, rpc("VerifyManufacturer")) is None
    assert policy.refusal(acme, rpc("Resign")) == (
        "Resign needs role supplier; client CN=acme,O=Acme has roles: manufacturer"
    )
    assert policy.refusal(nobody, rpc("ListKeys")) == (
        "ListKeys needs one of the roles supplier, ops; client CN=nobody has no role"
    )
    assert policy.refusal(acme, rpc("BuildDUIS")) == (
        "BuildDUIS is granted to no role by the policy; client CN=acme,O=Acme has roles: "
        "manufacturer"
    )
    # probes and tooling: open to anyone who passed the handshake
    assert policy.refusal(nobody, rpc("Check", "grpc.health.v1.Health")) is None
    for version in ("v1", "v1alpha"):
        reflection = f"grpc.reflection.{version}.ServerReflection"
        assert policy.refusal(nobody, rpc("ServerReflectionInfo", reflection)) is None
    # any other service: not open by default
    refused = policy.refusal(acme, rpc("Anything", "other.v1.Service"))
    assert refused is not None and "other.v1.Service/Anything is not covered" in refused


def test_a_client_with_an_empty_subject_is_named_by_its_alternative_names() -> None:
    policy = parse('[[clients]]\nsan = "DNS:robot.example"\nroles = ["ops"]\n')
    robot = caller("", None, ("DNS:robot.example",))
    assert policy.refusal(robot, rpc("Resign")) == (
        "Resign needs role supplier; client DNS:robot.example has roles: ops"
    )
