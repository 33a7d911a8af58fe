"""What `signer serve` checks before it binds a port, opens the token or creates anything:
each misconfigured file or path is one ConfigurationError naming the setting, and nothing
(no database file, no migrated schema) is left behind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from signer.config import Config, load_config
from signer.errors import ConfigurationError
from signer.registry.db import SQLITE_MAGIC, check_database
from signer.service.services import open_services
from signer.service.startup import check_startup, warn_development
from tests.support.hsm import MODULE, Hsm
from tests.support.smki_ca import TestCa

# -- what `signer serve` checks before binding, opening or creating anything ---------------

Sections = dict[str, dict[str, object]]


@pytest.fixture()
def files(tmp_path: Path, vectors: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Real files for a production configuration: schema, an SMKI issuer, a DCC certificate."""
    monkeypatch.setenv("PIN", "1234")
    empty = tmp_path / "empty-xsd"
    empty.mkdir()
    return {
        "xsd": vectors / "xsd",
        "empty": empty,
        "issuer": TestCa().write(tmp_path / "issuer.pem"),
        "dcc": vectors / "certs/dsp-xml-sign-90B3D51F30000002-ds.pem",
        "garbage": _write(tmp_path / "garbage.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n"),
        "conf": _write(tmp_path / "bad.conf", b"directories.tokendir = /nonexistent\n"),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _production(files: dict[str, Path]) -> Sections:
    return {
        "token": {"label": "t", "pin_env": "PIN", "module": MODULE},
        "supplier": {"eui": "90-B3-D5-1F-30-01-00-00"},
        "database": {"url": "sqlite:///db.sqlite"},
        "duis": {"schema_dir": str(files["xsd"])},
        "smki": {"issuers": [str(files["issuer"])]},
    }


def _toml(sections: Sections) -> str:
    def value(v: object) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v) + '"' if isinstance(v, str) else str(v).lower()

    return "".join(
        f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items())
        for name, table in sections.items()
    )


def _tls(files: dict[str, Path], **overrides: object) -> dict[str, object]:
    tls: dict[str, object] = {k: str(files["issuer"]) for k in ("cert", "key", "client_ca")}
    tls["policy"] = str(files["issuer"])
    return {**tls, **overrides}


def test_a_complete_production_configuration_passes(tmp_path: Path, files: dict[str, Path]) -> None:
    sections = _production(files)
    sections["dcc"] = {"certificates": [str(files["dcc"])]}
    (tmp_path / "signer.toml").write_text(_toml(sections))
    check_startup(load_config(tmp_path / "signer.toml", {}))
    assert not (tmp_path / "db.sqlite").exists()


def test_a_pinned_clock_runs_outside_development_mode_only_for_tests(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    sections = _production(files)
    sections["clock"] = {"pinned_time": "2024-06-01T12:00:00Z", "pinned_for_tests": True}
    (tmp_path / "signer.toml").write_text(_toml(sections))
    check_startup(load_config(tmp_path / "signer.toml", {}))


def _case(case: str, files: dict[str, Path]) -> tuple[Sections, dict[str, str]]:
    """The production configuration with one thing wrong, and its environment."""
    s = _production(files)
    env: dict[str, str] = {}
    if case == "no schema":
        del s["duis"]
    elif case == "no issuers":
        del s["smki"]
    elif case == "schema dir missing":
        s["duis"]["schema_dir"] = "/nowhere"
    elif case == "schema dir without DUIS":
        s["duis"]["schema_dir"] = str(files["empty"])
    elif case == "issuer missing":
        s["smki"]["issuers"] = ["absent.pem"]
    elif case == "issuer garbage":
        s["smki"]["issuers"] = [str(files["issuer"]), str(files["garbage"])]
    elif case == "dcc garbage":
        s["dcc"] = {"certificates": [str(files["garbage"])]}
    elif case == "pinned clock":
        env["SIGNER_PINNED_TIME"] = "2024-06-01T12:00:00Z"
    elif case == "dcc missing":
        s["dcc"] = {"certificates": ["absent.pem"]}
    elif case == "crl garbage":
        s["tls"] = _tls(files, crls=[str(files["garbage"])])
    elif case == "tls cert missing":
        s["tls"] = _tls(files, cert="absent.pem")
    elif case == "module missing":
        s["token"]["module"] = "/nonexistent/libpkcs11.so"
    elif case == "module a directory":
        s["token"]["module"] = "/tmp"
    elif case == "softhsm2 conf missing":
        s["token"]["softhsm2_conf"] = "absent.conf"
    elif case == "softhsm2 tokendir missing":
        s["token"]["softhsm2_conf"] = str(files["conf"])
    elif case == "pin file missing":
        env["SIGNER_PIN_FILE"] = "absent.pin"
    elif case == "pin env unset":
        env["SIGNER_PIN_ENV"] = "NO_SUCH_PIN"
    elif case == "unknown dialect":
        env["SIGNER_DATABASE_URL"] = "mysql+nope://u@h/db"
    elif case == "not a url":
        env["SIGNER_DATABASE_URL"] = "not a url"
    elif case == "url with a password":  # it does not parse: nothing after the scheme shows
        env["SIGNER_DATABASE_URL"] = "postgresql:/u:hunter2@h/db"
    elif case == "port not a number":
        env["SIGNER_DATABASE_URL"] = "postgresql+psycopg://u:hunter2@h:abc/db"
    else:
        raise AssertionError(case)
    return s, env


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("no schema", "duis.schema_dir is required outside development mode: the DUIS 5.4"),
        ("no issuers", "smki.issuers is required outside development mode: the SMKI Issuing"),
        ("schema dir missing", "duis.schema_dir /nowhere: not a directory"),
        ("schema dir without DUIS", "duis.schema_dir .*: no DUIS_Schema_V5.4.xsd"),
        ("issuer missing", "smki.issuers .*/absent.pem: No such file"),
        ("issuer garbage", "smki.issuers .*garbage.pem: not an X.509 certificate"),
        ("dcc garbage", "dcc.certificates .*garbage.pem: not an X.509 certificate"),
        ("dcc missing", "dcc.certificates .*/absent.pem: No such file"),
        ("crl garbage", "tls.crls .*garbage.pem: not a certificate revocation list"),
        ("tls cert missing", "tls.cert .*/absent.pem: No such file"),
        ("module missing", "token.module /nonexistent/libpkcs11.so: does not exist"),
        ("module a directory", "token.module /tmp: is not a readable file"),
        ("softhsm2 conf missing", "token.softhsm2_conf .*/absent.conf: No such file"),
        ("softhsm2 tokendir missing", "directories.tokendir /nonexistent is not a directory"),
        ("pin file missing", "token.pin_file .*/absent.pin: No such file"),
        ("pin env unset", "token.pin_env: the environment variable NO_SUCH_PIN is not set"),
        ("unknown dialect", r"database.url: unknown dialect or missing driver 'mysql\+nope'"),
        ("pinned clock", "clock.pinned_time is set outside development mode"),
        ("not a url", r"database.url \(not a URL\): not a database URL"),
        ("url with a password", r"^database.url 'postgresql:…': not a database URL \(sqlite"),
        ("port not a number", r"^database.url 'postgresql\+psycopg:…': not a database URL"),
    ],
)
def test_serve_refuses_misconfigured_files_before_anything_is_bound(
    tmp_path: Path, files: dict[str, Path], case: str, named: str
) -> None:
    sections, env = _case(case, files)
    (tmp_path / "signer.toml").write_text(_toml(sections))
    with pytest.raises(ConfigurationError, match=named) as refused:
        check_startup(load_config(tmp_path / "signer.toml", env))
    assert "\n" not in str(refused.value) and "hunter2" not in str(refused.value)
    assert not (tmp_path / "db.sqlite").exists()


def test_development_mode_runs_without_schema_and_issuers_and_says_so_once(
    tmp_path: Path, files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    sections = _production(files)
    del sections["duis"], sections["smki"]
    sections["server"] = {"dev_mode": True}
    (tmp_path / "signer.toml").write_text(_toml(sections))
    config = load_config(tmp_path / "signer.toml", {})
    check_startup(config)
    with caplog.at_level(logging.WARNING, logger="signer"):
        warn_development(config)
    [line] = [r.getMessage() for r in caplog.records]
    assert "DEVELOPMENT MODE runs without duis.schema_dir" in line and "smki.issuers" in line


@pytest.mark.parametrize(
    ("make", "named"),
    [
        ("text", "not an SQLite database"),
        ("directory", "is a directory, not a database file"),
        ("no parent", "directory .*/missing does not exist"),
        ("parent a file", "is not a directory"),
        ("memory", "in-memory SQLite database"),
    ],
)
def test_a_path_that_cannot_be_a_database_is_refused_and_left_alone(
    tmp_path: Path, make: str, named: str
) -> None:
    target = {
        "text": tmp_path / "notes.txt",
        "directory": tmp_path / "dir.db",
        "no parent": tmp_path / "missing" / "signer.db",
        "parent a file": tmp_path / "notes.txt" / "signer.db",
        "memory": None,
    }[make]
    (tmp_path / "notes.txt").write_text("not a database\n")
    (tmp_path / "dir.db").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    url = f"sqlite:///{target}" if target is not None else "sqlite://"
    with pytest.raises(ConfigurationError, match=f"database.url.*{named}"):
        check_database(url)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"


def test_an_empty_file_and_a_real_database_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "real.db").write_bytes(SQLITE_MAGIC + bytes(84))
    check_database(f"sqlite:///{tmp_path / 'empty.db'}")
    check_database(f"sqlite:///{tmp_path / 'real.db'}")
    check_database(f"sqlite:///{tmp_path / 'new.db'}")
    assert not (tmp_path / "new.db").exists()


def _served(tmp_path: Path, hsm: Hsm, *, db: Path, xml_key: str | None = None) -> Config:
    sections: Sections = {
        "server": {"dev_mode": True},
        "token": {"label": "signer-test", "pin_file": str(hsm.pin_file), "module": MODULE},
        "supplier": {"eui": "90-B3-D5-1F-30-01-00-00"},
        "database": {"url": f"sqlite:///{db}"},
    }
    if xml_key is not None:
        sections["supplier"]["xml_signing_key"] = xml_key
    (tmp_path / "signer.toml").write_text(_toml(sections))
    return load_config(tmp_path / "signer.toml", {})


@pytest.mark.parametrize(
    ("xml_key", "named"),
    [
        ("no-such-key", "supplier.xml_signing_key 'no-such-key': no key"),
        ("pkcs11:token=other;object=xml-sign", "names token 'other', but token.label is"),
    ],
)
def test_serve_refuses_an_xml_signing_key_not_on_the_token_before_the_database(
    tmp_path: Path, hsm: Hsm, xml_key: str, named: str
) -> None:
    config = _served(tmp_path, hsm, db=tmp_path / "signer.db", xml_key=xml_key)
    with pytest.raises(ConfigurationError, match=named):
        open_services(config, token=hsm.token(), serving=True)
    assert not (tmp_path / "signer.db").exists()  # neither created nor migrated


def test_serve_refuses_a_text_file_as_database_after_the_token(tmp_path: Path, hsm: Hsm) -> None:
    notes = _write(tmp_path / "notes.txt", b"not a database\n")
    config = _served(tmp_path, hsm, db=notes)
    with pytest.raises(ConfigurationError, match=r"database.url .*notes.txt: not an SQLite"):
        open_services(config, token=hsm.token(), serving=True)
    assert notes.read_bytes() == b"not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "signer.toml"]
