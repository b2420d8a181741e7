"""Reading one small text field of a multipart/form-data body (the `model` of an upload)."""

from __future__ import annotations


def form_field(body: bytes, content_type: str, name: str) -> str:
    """The value of a text field of a multipart/form-data body ("" when absent)."""
    marker = "boundary="
    at = content_type.find(marker)
    if at < 0:
        return ""
    boundary = content_type[at + len(marker) :].split(";")[0].strip().strip('"').encode()
    needle = f'name="{name}"'.encode()
    for part in body.split(b"--" + boundary):
        head, sep, value = part.partition(b"\r\n\r\n")
        if sep and needle in head and b"filename=" not in head:
            return value.rstrip(b"\r\n").decode(errors="replace").strip()
    return ""
