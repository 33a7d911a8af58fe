"""SMKI remote party role codes, shared by certificate checks and trust anchor parsing."""

from __future__ import annotations

import enum


class RemotePartyRole(enum.IntEnum):
    """Role codes as certificates write them (subject OU, two hex digits) and GBCS encodes them.

    Kept as one enum so a certificate's OU and a trust anchor cell's role compare directly.
    """

    RECOVERY = 0x01
    SUPPLIER = 0x02
    NETWORK_OPERATOR = 0x03
    ACCESS_CONTROL_BROKER = 0x04
    TRANSITIONAL_COS = 0x05
    WAN_PROVIDER = 0x06
    ISSUING_AUTHORITY = 0x07
    LOAD_CONTROLLER = 0x08
    OTHER = 0x7F
    XML_SIGNING = 0x87
    DSP_XML_SIGNING = 0x89
