"""Test helpers: write and read small clips, and make a local certificate authority."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_clip(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    audio: bool = False,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    crf: int = 18,
) -> Path:
    """Encode BGR frames at 25 frames/s (with a 440 Hz AAC tone if ``audio``)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=options or {}) as out:
        v = out.add_stream(codec, rate=25)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            v.options = {"crf": str(crf), "preset": "veryfast"}
        a = out.add_stream("aac", rate=48000) if audio else None
        t = 0
        for img in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(p)
            if a is not None:
                n = 1920  # 40 ms
                x = np.arange(t, t + n) / 48000
                tone = (0.2 * np.sin(2 * np.pi * 440 * x)).astype(np.float32)[None, :]
                frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, t
                t += n
                for p in a.encode(frame):
                    out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            for p in a.encode():
                out.mux(p)
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def stream_types(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as c:
        return [s.type for s in c.streams]


def make_ca(folder: Path, *, self_signed: bool = False) -> tuple[Path, Path]:
    """A local CA and an ES256 leaf for C2PA: (chain.pem, leaf-key.pem) in ``folder``.

    With ``self_signed``, the "chain" is one self-signed certificate (which C2PA refuses).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "custodes tests"),
            ]
        )

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    def base(
        subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION])
    pem = serialization.Encoding.PEM
    if self_signed:
        leaf = (
            base(name("custodes self-signed"), name("custodes self-signed"), leaf_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(usage(sign=True, ca=False), True)
            .add_extension(eku, False)
            .sign(leaf_key, hashes.SHA256())
        )
        chain = leaf.public_bytes(pem)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            base(name("custodes test CA"), name("custodes test CA"), ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(usage(sign=False, ca=True), True)
            .sign(ca_key, hashes.SHA256())
        )
        leaf = (
            base(name("custodes export signer"), ca.subject, leaf_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(usage(sign=True, ca=False), True)
            .add_extension(eku, False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain_path, key_path = folder / "chain.pem", folder / "leaf-key.pem"
    chain_path.write_bytes(chain)
    key_path.write_bytes(key)
    return chain_path, key_path
