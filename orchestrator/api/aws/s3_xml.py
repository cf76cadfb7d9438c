"""S3's XML on the wire: documents written as botocore's rest-xml parser reads them, request
documents (``Delete``, ``CompleteMultipartUpload``, ``CreateBucketConfiguration``) parsed with
the standard library (no document type declarations, so no entities), the error
document, and S3's two timestamp forms."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from orchestrator.api.aws.errors import AwsError

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def el(tag: str, *children: object) -> Raw:
    """``<tag>children</tag>``: strings are escaped, ``Raw`` is inserted as it is, ``None``
    children are dropped, booleans are ``true``/``false``."""
    parts: list[str] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, Raw):
            parts.append(child)
        elif isinstance(child, bool):
            parts.append("true" if child else "false")
        else:
            parts.append(escape(str(child)))
    return Raw(f"<{tag}>{''.join(parts)}</{tag}>")


class Raw(str):
    """XML already written (by ``el``)."""


def opt(tag: str, value: object) -> str | None:
    return None if value is None or value == "" else el(tag, value)


def document(root: str, *children: object) -> bytes:
    inner = el(root, *children)
    opened = inner.replace(f"<{root}>", f'<{root} xmlns="{NS}">', 1)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + opened).encode()


def iso(when: datetime) -> str:
    """``2024-05-01T12:00:00.000Z``: timestamps inside documents."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def http_date(when: datetime) -> str:
    """``Wed, 01 May 2024 12:00:00 GMT``: timestamps in headers (Last-Modified)."""
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def error_document(error: AwsError, request_id: str) -> bytes:
    extra = [el(k, v) for k, v in error.extra.items() if v is not None]
    body = el("Error", el("Code", error.aws_code), el("Message", error.message), *extra,
              el("RequestId", request_id))  # fmt: skip
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes, root: str) -> ElementTree.Element:
    """The request document, its tags stripped of their namespace; ``MalformedXML`` unless it
    parses and its root is ``root``."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise AwsError("MalformedXML", "a document type declaration is not allowed here")
    try:
        # No DTD (refused above), so no entity can be declared: nothing for defusedxml to stop.
        tree = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError as e:
        raise AwsError(
            "MalformedXML",
            f"The XML you provided was not well-formed or did not validate against our "
            f"published schema ({e})",
        ) from e
    for node in tree.iter():
        node.tag = _local(node.tag)
    if tree.tag != root:
        raise AwsError(
            "MalformedXML", f"the document's root element must be <{root}>, not <{tree.tag}>"
        )
    return tree


def text(node: ElementTree.Element, tag: str) -> str | None:
    child = node.find(tag)
    return None if child is None else (child.text or "")
