"""schemathesis hooks for .ci/api-fuzz: how to send a text/csv body (a file of refunds for
POST /api/v1/refund-batches). The document describes the body as a string; it is sent as
its UTF-8 bytes."""

import schemathesis


@schemathesis.serializer("text/csv")
def csv_body(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")
