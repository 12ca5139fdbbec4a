"""lld: the per-node, stateless, request-reply debugging stub beneath the kernel.

See docs/lld-protocol.md.  Entry points: `lld.attach.Lld` (put lld beneath a
machine), `lld.codec` and `lld.protocol` (the wire format, shared with the
mux), `lld.client.LldClient` (the sans-IO client end).
"""
