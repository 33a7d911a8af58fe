"""DUIS 5.4 schema loading and validation; our limits must agree with the schema's facets."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from signer.duis.request import (
    MAX_DEVICE_ID_LIST_CHARS,
    MAX_FIRMWARE_IMAGE,
    MAX_FIRMWARE_VERSION_CHARS,
    MIN_FIRMWARE_VERSION_CHARS,
    RequestId,
    build_update_firmware,
)
from signer.duis.schema import DuisSchema
from signer.duis.xmlparse import parse_xml
from signer.errors import ConfigurationError, InvalidInput
from signer.gbcs.eui import Eui64

XS = {"xs": "http://www.w3.org/2001/XMLSchema"}
RID = RequestId.parse("90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:1000")


def test_load_is_cached(vectors: Path) -> None:
    assert DuisSchema.load(vectors / "xsd") is DuisSchema.load(str(vectors / "xsd"))


def test_missing_schema_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        DuisSchema.load(tmp_path)


def test_every_dcc_template_validates(vectors: Path, schema: DuisSchema) -> None:
    templates = sorted((vectors / "duis").glob("*.XML"))
    assert len(templates) == 7
    for path in templates:
        schema.validate(parse_xml(path.read_bytes(), field="template"))


def test_limits_match_the_schema_facets(vectors: Path) -> None:
    xsd = etree.parse(str(vectors / "xsd" / "DUIS_Schema_V5.4.xsd"))

    def facet(xpath: str) -> int:
        values = {int(v) for v in xsd.xpath(xpath, namespaces=XS)}
        assert len(values) == 1, (xpath, values)
        return values.pop()

    body = "//xs:complexType[@name='UpdateFirmware' or @name='UpdatePPMIDFirmware']"
    assert facet(f"{body}//xs:element[@name='FirmwareImage']//xs:maxLength/@value") == (
        MAX_FIRMWARE_IMAGE
    )
    assert facet(f"{body}//xs:element[@name='DeviceIDList']//xs:maxLength/@value") == (
        MAX_DEVICE_ID_LIST_CHARS
    )
    version = "//xs:simpleType[@name='FirmwareVersion']"
    assert facet(f"{version}//xs:maxLength/@value") == MAX_FIRMWARE_VERSION_CHARS
    assert facet(f"{version}//xs:minLength/@value") == MIN_FIRMWARE_VERSION_CHARS


@pytest.mark.parametrize("service", ["11.1", "11.4"])
def test_largest_request_is_schema_valid(schema: DuisSchema, service: str) -> None:
    root = build_update_firmware(
        request_id=RID,
        service=service,
        firmware_image=bytes(range(256)) * (MAX_FIRMWARE_IMAGE // 256),
        firmware_version="ABCDEFGH",
        devices=[Eui64(i.to_bytes(8, "big")) for i in range(50_000)],
    )
    schema.validate(root)


def test_first_schema_error_is_reported(schema: DuisSchema) -> None:
    root = build_update_firmware(
        request_id=RID,
        service="11.1",
        firmware_image=b"x",
        firmware_version="1",
        devices=[Eui64.parse("00-DB-12-34-56-78-90-A0")],
    )
    device_ids = root.find(".//{*}DeviceIDList")
    assert device_ids is not None
    device_ids.text = "00-DB-12-34-56-78-90-A0;00-DB-12-34-56-78-90-A1"
    with pytest.raises(InvalidInput, match="DeviceIDList") as e:
        schema.validate(root)
    assert e.value.field == "duis_request"


def test_a_parsed_document_error_names_its_line(vectors: Path, schema: DuisSchema) -> None:
    text = (vectors / "duis" / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML").read_bytes()
    bad = text.replace(b"<sr:CommandVariant>8<", b"<sr:CommandVariant>99<")
    with pytest.raises(InvalidInput, match=r"line 5: .*CommandVariant"):
        schema.validate(parse_xml(bad, field="x"))


def test_imports_outside_the_schema_directory_are_not_fetched(tmp_path: Path) -> None:
    (tmp_path / "DUIS_Schema_V5.4.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:a">'
        '<xs:import namespace="urn:b" schemaLocation="http://example.invalid/b.xsd"/>'
        '<xs:element name="a" type="xs:string"/></xs:schema>'
    )
    with pytest.raises(ConfigurationError, match="does not compile"):
        DuisSchema.load(tmp_path)
