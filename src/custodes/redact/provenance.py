"""Optional C2PA Content Credentials embedded in an export, signed offline.

``c2pa-python`` (MIT or Apache-2.0) signs with a local certificate chain and
needs no network: no timestamp authority is used, and OCSP is skipped. The
C2PA library refuses a self-signed certificate, so the chain must be a leaf
(digital-signature key usage, an e-mail-protection or document-signing
extended key usage) issued by a certificate authority, such as one a city
runs for its own exports. Readers report such a signature as valid but from
an untrusted issuer until they add the CA to their trust list.

The claim is an *edit* of the source file (its parent ingredient), with a
``c2pa.edited`` action saying that faces were hidden and an
``org.custodes.redaction`` assertion holding the redaction parameters, the
source digests and the detector model digest. Formats: what the C2PA library
writes (MP4/MOV, JPEG, PNG, WebP, TIFF); not Matroska.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import custodes
from custodes.errors import FormatError, UsageError

__all__ = ["MIME_TYPES", "C2paSigning", "check_c2pa", "embed_c2pa", "read_c2pa"]

MIME_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


@dataclasses.dataclass(frozen=True)
class C2paSigning:
    """A certificate chain (leaf first, PEM), its leaf's private key, and the record to sign."""

    cert_chain_pem: bytes
    private_key_pem: bytes
    record: dict[str, Any]


def _mime(suffix: str) -> str:
    mime = MIME_TYPES.get(suffix.lower())
    if mime is None:
        raise UsageError(
            f"C2PA credentials cannot be embedded in or taken from a {suffix or 'bare'} "
            f"file: use {', '.join(sorted(MIME_TYPES))}."
        )
    return mime


def check_c2pa(source: Path, dst: Path) -> None:
    """Refuse early (UsageError) what :func:`embed_c2pa` could not do."""
    _mime(source.suffix)
    _mime(dst.suffix)
    try:
        import c2pa  # noqa: F401
    except ImportError:
        raise UsageError(
            "C2PA signing needs the c2pa-python package, which is not installed."
        ) from None


def embed_c2pa(
    *,
    redacted: Path,
    dst: Path,
    out_suffix: str,
    source: Path,
    cert_chain_pem: bytes,
    private_key_pem: bytes,
    record: dict[str, Any],
) -> None:
    """Write ``redacted`` to ``dst`` with a signed C2PA manifest embedded.

    ``out_suffix`` names the format (``dst`` may be a temporary name).
    ``record`` (redaction parameters, sources, detector) becomes the
    ``org.custodes.redaction`` assertion.
    """
    check_c2pa(source, Path("x" + out_suffix))
    import c2pa

    out_mime, src_mime = _mime(out_suffix), _mime(source.suffix)
    manifest = {
        "claim_generator_info": [{"name": "custodes", "version": custodes.__version__}],
        "title": dst.name,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.edited",
                            "description": "Faces detected and hidden; no one was identified.",
                        }
                    ]
                },
            },
            {"label": "org.custodes.redaction", "data": record},
        ],
    }
    try:
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, cert_chain_pem, private_key_pem, None)
        signer = c2pa.Signer.from_info(info)
        builder = c2pa.Builder(json.dumps(manifest))
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
        with source.open("rb") as ing:
            builder.add_ingredient(
                json.dumps({"title": source.name, "relationship": "parentOf"}), src_mime, ing
            )
        with redacted.open("rb") as s, dst.open("wb") as d:
            builder.sign(signer, out_mime, s, d)
    except c2pa.C2paError as e:
        raise FormatError(f"C2PA signing failed: {_first_line(e)}.") from None


def read_c2pa(path: Path) -> dict[str, Any]:
    """The C2PA manifest store of a file as JSON (for checks and tests)."""
    import c2pa

    try:
        reader = c2pa.Reader(str(path))
        return dict(json.loads(reader.json()))
    except c2pa.C2paError as e:
        raise FormatError(
            f"Cannot read C2PA credentials from {path.name}: {_first_line(e)}."
        ) from None


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
