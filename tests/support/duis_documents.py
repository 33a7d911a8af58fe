"""DCC documents read or written independently of the project's parser, for comparisons:
the request templates, and the DCC's response carrying a pre-command; and small SR 11.1
requests built by the project, for the signing tests."""

from __future__ import annotations

import base64
from pathlib import Path

from lxml import etree

from signer.duis.request import RequestId, build_update_firmware
from signer.gbcs.eui import Eui64

DS = "http://www.w3.org/2000/09/xmldsig#"
SR = "http://www.dccinterface.co.uk/ServiceUserGateway"


def independent_parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def template_without_signature(path: Path) -> etree._Element:
    """A DCC template as a compact document without its placeholder Signature."""
    root = independent_parse(path.read_bytes())
    sig = root.find(f"{{{DS}}}Signature")
    assert sig is not None
    root.remove(sig)
    for el in root.iter():
        if el.tail is not None and not el.tail.strip():
            el.tail = None
        if len(el) and el.text is not None and not el.text.strip():
            el.text = None
    return root


def c14n(root: etree._Element) -> bytes:
    out: bytes = etree.tostring(root.getroottree(), method="c14n")
    return out


def dcc_response(
    payload: bytes,
    *,
    request_id: str | None = "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000",
    service: str = "11.3",
    element: str = "PreCommand",
) -> bytes:
    """A Transform response as DUIS 5.4 describes it (hand-built, not DCC-issued)."""
    b64 = base64.b64encode(payload).decode()
    rid = f"<sr:RequestID>{request_id}</sr:RequestID>" if request_id else ""
    body = (
        f"<sr:PreCommand><sr:GBCSVersion>4.0</sr:GBCSVersion><sr:GBCSPayload>{b64}"
        "</sr:GBCSPayload></sr:PreCommand>"
        if element == "PreCommand"
        else f"<sr:GBCSPayload>{b64}</sr:GBCSPayload>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<sr:Response xmlns:sr="{SR}" schemaVersion="5.4"><sr:Header>{rid}'
        "<sr:ResponseID>00-DB-12-34-56-78-90-A0:90-B3-D5-1F-30-01-00-00:1000</sr:ResponseID>"
        "<sr:ResponseCode>I0</sr:ResponseCode>"
        "<sr:ResponseDateTime>2024-06-01T12:00:00.000Z</sr:ResponseDateTime></sr:Header>"
        f"<sr:Body><sr:ResponseMessage><sr:ServiceReference>{service}</sr:ServiceReference>"
        f"<sr:ServiceReferenceVariant>{service}</sr:ServiceReferenceVariant>{body}"
        "</sr:ResponseMessage></sr:Body></sr:Response>"
    ).encode()


UPDATE_RID = "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:1001"


def update_request(image: bytes = bytes(range(256)) * 40, devices: int = 2) -> etree._Element:
    """An SR 11.1 request (unsigned) carrying ``image`` to ``devices`` made-up devices."""
    return build_update_firmware(
        request_id=RequestId.parse(UPDATE_RID),
        service="11.1",
        firmware_image=image,
        firmware_version="0102",
        devices=[Eui64((0x00DB << 48 | i).to_bytes(8, "big")) for i in range(devices)],
    )


def stray_element(root: etree._Element) -> etree._Element:
    """``root`` with an element the DUIS schema does not allow, appended."""
    etree.SubElement(root, f"{{{SR}}}Stray")
    return root


def signature_of(root: etree._Element) -> etree._Element | None:
    """The root's ds:Signature, if it has one."""
    return root.find(f"{{{DS}}}Signature")
