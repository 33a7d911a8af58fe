"""The Central Products List (CPL/FIR) as MP231 extends it: entries, import, upgrade pathways.

Pure code like ``signer.gbcs``: no I/O, no clock. The registry stores what ``parse`` yields;
the service asks ``paths`` which devices may take an image and which path would work. See
docs/cpl.md.
"""
