"""gRPC message limits, from both ends: a module of its own, so a client (the CLI) takes
them without importing the server."""

from __future__ import annotations

# Images up to 10,240,000 bytes must pass both ways; the gRPC default of 4 MiB rejects them.
# The largest request is a 10 MB upgrade image with 50,000 device IDs (about 11.5 MB); the
# largest response a Resign with one 10 MB image per key, or a 13.7 MB DUIS document.
MAX_REQUEST = 16 * 1024 * 1024
MAX_RESPONSE = 64 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_REQUEST),
    ("grpc.max_send_message_length", MAX_RESPONSE),
]
#: for clients: the same limits seen from the other end
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_REQUEST),
    ("grpc.max_receive_message_length", MAX_RESPONSE),
]
