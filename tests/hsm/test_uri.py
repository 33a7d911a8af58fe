"""Key names: plain labels and PKCS#11 URIs (RFC 7512), including the RFC's own examples."""

from __future__ import annotations

import pytest

from signer.errors import InvalidInput
from signer.hsm.uri import KeyRef, parse_key_ref


def refused(text: str, *, field: str = "key") -> str:
    with pytest.raises(InvalidInput) as err:
        parse_key_ref(text, field=field)
    assert err.value.field == field
    return str(err.value)


# -- plain labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label",
    [
        "supplier-ds",
        "Supplier DS 2026",
        "a",
        "é-key",
        "x" * 128,
        "pkcs11-is-not-a-scheme-here",
        "object=L",
    ],
)
def test_plain_label(label: str) -> None:
    ref = parse_key_ref(label)
    assert ref == KeyRef(label=label, key_id=None, token=None)
    assert ref.describe() == repr(label)


def test_plain_label_describe_example() -> None:
    assert parse_key_ref("L").describe() == "'L'"


@pytest.mark.parametrize(
    ("label", "says"),
    [
        ("", "empty"),
        ("x" * 129, "129 characters"),
        ("bad\nlabel", "control character"),
        ("tab\there", "control character"),
        ("nul\x00", "control character"),
        ("del\x7f", "control character"),
    ],
)
def test_bad_plain_label_is_refused(label: str, says: str) -> None:
    message = refused(label, field="signing_key")
    assert says in message
    assert "signing_key" in message


# -- URIs ------------------------------------------------------------------------------------


def test_token_and_object() -> None:
    ref = parse_key_ref("pkcs11:token=T;object=L")
    assert ref == KeyRef(label="L", key_id=None, token="T")
    assert ref.describe() == "pkcs11:token=T;object=L"


def test_token_and_object_from_the_issue() -> None:
    ref = parse_key_ref("pkcs11:token=signer-dev;object=supplier-ds")
    assert ref == KeyRef(label="supplier-ds", key_id=None, token="signer-dev")


@pytest.mark.parametrize("scheme", ["pkcs11:", "PKCS11:", "Pkcs11:"])
def test_scheme_is_case_insensitive(scheme: str) -> None:
    assert parse_key_ref(scheme + "object=L") == KeyRef(label="L", key_id=None, token=None)


def test_object_alone_describes_as_the_label() -> None:
    assert parse_key_ref("pkcs11:object=L").describe() == "'L'"


def test_percent_encoded_object_with_space_and_semicolon() -> None:
    ref = parse_key_ref("pkcs11:token=My%20Token;object=supplier%20ds%3Bold")
    assert ref.label == "supplier ds;old"
    assert ref.token == "My Token"
    assert ref.describe() == "pkcs11:token=My%20Token;object=supplier%20ds%3Bold"
    assert parse_key_ref(ref.describe()) == ref


def test_id_is_raw_bytes() -> None:
    ref = parse_key_ref("pkcs11:token=My%20Token;id=%01%02%03%04%05%06%07%08;type=private")
    assert ref == KeyRef(label=None, key_id=bytes(range(1, 9)), token="My Token")
    assert ref.describe() == "pkcs11:token=My%20Token;id=%01%02%03%04%05%06%07%08"


def test_id_may_mix_literal_characters_and_hex_case() -> None:
    assert parse_key_ref("pkcs11:id=ab%Ba%dd%eF").key_id == b"ab\xba\xdd\xef"


def test_id_and_object_together() -> None:
    ref = parse_key_ref("pkcs11:object=L;id=%FF")
    assert ref == KeyRef(label="L", key_id=b"\xff", token=None)
    assert parse_key_ref(ref.describe()) == ref


@pytest.mark.parametrize("kind", ["private", "public", "cert"])
def test_type_values_name_the_same_key(kind: str) -> None:
    assert parse_key_ref(f"pkcs11:object=L;type={kind}") == KeyRef("L", None, None)


def test_attribute_order_does_not_matter() -> None:
    assert parse_key_ref("pkcs11:type=private;object=L;token=T") == KeyRef("L", None, "T")


def test_empty_query_is_accepted() -> None:
    assert parse_key_ref("pkcs11:object=L?") == KeyRef("L", None, None)


def test_key_ref_needs_label_or_id() -> None:
    with pytest.raises(ValueError, match="label or a key_id"):
        KeyRef(label=None, key_id=None, token="T")


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "names"),
    [
        ("pkcs11:object=L;colour=blue", "'colour'"),
        ("pkcs11:object=L;Object=M", "'Object'"),
        ("pkcs11:object=L;vendor-aaa=value-a", "'vendor-aaa'"),
        ("pkcs11:object=L;object=M", "'object'"),
        ("pkcs11:token=T;object=L;token=T", "'token'"),
        ("pkcs11:object=L;type=private;type=public", "'type'"),
        ("pkcs11:object=L;id=%01;id=%01", "'id'"),
        ("pkcs11:object=L;slot-id=1", "'slot-id'"),
        ("pkcs11:slot-description=Sun%20Metaslot", "'slot-description'"),
        ("pkcs11:object=L;slot-manufacturer=Snake%20Oil", "'slot-manufacturer'"),
        ("pkcs11:object=L;library-manufacturer=Snake%20Oil,%20Inc.", "'library-manufacturer'"),
        ("pkcs11:object=L;library-description=Soft%20Token%20Library", "'library-description'"),
        ("pkcs11:object=L;library-version=1.23", "'library-version'"),
        ("pkcs11:object=L;manufacturer=Snake%20Oil,%20Inc.", "'manufacturer'"),
        ("pkcs11:object=L;model=1.0", "'model'"),
        ("pkcs11:object=L;serial=", "'serial'"),
        ("pkcs11:object=L;type=secret-key", "'type'"),
        ("pkcs11:object=L;type=data", "'type'"),
        ("pkcs11:object=L;type=", "'type'"),
        ("pkcs11:object=L;object", "'object'"),
        ("pkcs11:object=", "'object'"),
        ("pkcs11:token=;object=L", "'token'"),
        ("pkcs11:id=", "'id'"),
        ("pkcs11:object=%zz", "'object'"),
        ("pkcs11:object=L%2", "'object'"),
        ("pkcs11:id=%0G", "'id'"),
        ("pkcs11:object=L;token=T%", "'token'"),
        ("pkcs11:object=two words", "'object'"),
        ("pkcs11:object=a/b", "'object'"),
        ("pkcs11:object=L%0A", "'object'"),
        ("pkcs11:object=%FF%FE", "'object'"),
        ("pkcs11:object=L;token=" + "T" * 129, "'token'"),
    ],
)
def test_bad_uri_is_refused_naming_the_attribute(uri: str, names: str) -> None:
    message = refused(uri, field="signing_key")
    assert names in message
    assert message.startswith("signing_key: ")


@pytest.mark.parametrize(
    "uri", ["pkcs11:", "pkcs11:token=T", "pkcs11:type=private", "pkcs11:token=T;type=cert?"]
)
def test_uri_naming_no_key_is_refused(uri: str) -> None:
    message = refused(uri)
    assert "'object' or 'id'" in message


@pytest.mark.parametrize(
    "uri", ["pkcs11:object=L;", "pkcs11:;object=L", "pkcs11:object=L;;id=%01", "pkcs11:=x;object=L"]
)
def test_empty_attribute_is_refused(uri: str) -> None:
    assert "attribute name" in refused(uri)


SECRET = "s3cr3t-Pin-4711"


@pytest.mark.parametrize(
    "uri",
    [
        f"pkcs11:object=L?pin-value={SECRET}",
        f"pkcs11:object=L;type=private?module-name=x&pin-value={SECRET}",
        f"pkcs11:object=L;pin-value={SECRET}",
        f"pkcs11:object=%zz?pin-value={SECRET}",
        f"pkcs11:token=Software%20PKCS%2311%20softtoken;object=L?pin-value={SECRET}",
    ],
)
def test_pin_value_is_refused_without_echoing_it(uri: str) -> None:
    message = refused(uri)
    assert SECRET not in message
    assert "s3cr3t" not in message


def test_pin_value_message_says_where_pins_go() -> None:
    message = refused(f"pkcs11:object=L?pin-value={SECRET}")
    assert "'pin-value'" in message
    assert "PINs never go on the command line or in configuration" in message
    assert "pin_file" in message and "pin_env" in message


@pytest.mark.parametrize(
    ("query", "name", "says"),
    [
        ("pin-source=file:/etc/token_pin", "'pin-source'", "pin_file"),
        ("module-name=mypkcs11", "'module-name'", "configuration"),
        ("module-path=/mnt/libmypkcs11.so.1", "'module-path'", "configuration"),
        ("vendor-bbb=value-b", "'vendor-bbb'", "no query attributes"),
        ("&", "(malformed)", "no query attributes"),
    ],
)
def test_query_attributes_are_refused(query: str, name: str, says: str) -> None:
    message = refused(f"pkcs11:object=my-key;type=private?{query}")
    assert name in message
    assert says in message
    assert query.partition("=")[2] not in message or not query.partition("=")[2]


# -- RFC 7512 section 3.3 examples -----------------------------------------------------------

RFC_CERT = (
    "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
    "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;"
    "type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial="
)


def test_rfc_example_with_token_identity_is_refused_naming_it() -> None:
    # manufacturer/model/serial are refused, not ignored: the configuration picks the token.
    message = refused(RFC_CERT)
    assert "'manufacturer'" in message
    assert "token=" in message


def test_rfc_example_without_token_identity() -> None:
    trimmed = RFC_CERT.replace("manufacturer=Snake%20Oil,%20Inc.;model=1.0;", "")
    trimmed = trimmed.removesuffix(";serial=")
    ref = parse_key_ref(trimmed)
    assert ref == KeyRef(
        label="my-certificate",
        key_id=bytes.fromhex("69953E5CF4BDEC91"),
        token="The Software PKCS#11 Softtoken",
    )
    assert ref.describe() == (
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
        "object=my-certificate;id=%69%95%3E%5C%F4%BD%EC%91"
    )
    assert parse_key_ref(ref.describe()) == ref


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("pkcs11:object=my-pubkey;type=public", KeyRef("my-pubkey", None, None)),
        (
            "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
            KeyRef("my-certificate", None, "A name with a substring %;"),
        ),
        (
            "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;"
            "object=my-certificate;type=cert",
            KeyRef("my-certificate", None, "Name with a small A with acute: \u00e1"),
        ),
    ],
)
def test_rfc_examples_that_name_a_key(uri: str, expected: KeyRef) -> None:
    ref = parse_key_ref(uri)
    assert ref == expected
    described = ref.describe()
    if ref.token is None:
        assert described == repr(ref.label)  # a bare object is shown as its label
    else:
        assert parse_key_ref(described) == ref


@pytest.mark.parametrize(
    ("uri", "names"),
    [
        ("pkcs11:object=my-key;type=private?pin-source=file:/etc/token", "'pin-source'"),
        ("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11", "'module-name'"),
        (
            "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
            "'module-path'",
        ),
        (
            "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc."
            "?pin-value=the-pin",
            "'pin-value'",
        ),
        ("pkcs11:slot-description=Sun%20Metaslot", "'slot-description'"),
        (
            "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;"
            "library-description=Soft%20Token%20Library;library-version=1.23",
            "'library-manufacturer'",
        ),
        (
            "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a"
            "?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
            "'pin-source'",
        ),
    ],
)
def test_rfc_examples_we_refuse(uri: str, names: str) -> None:
    message = refused(uri)
    assert names in message
    assert "the-pin" not in message
