#!/usr/bin/env python3
"""Pin the prod overlay to one image by digest: ``scripts/image/pin_digest.py REGISTRY/REPO@sha256:HEX``.

Why a script: the reference lives in two files that must agree, and a hand edit of one is how they drift:

* ``k8s/overlays/prod/values.yaml``, ``image.repository`` and ``image.digest``: the training pods the chart
  renders (the commit-driven job in k8s/rendered/prod and the nightly retrain's jobs);
* ``k8s/overlays/prod/kustomization.yaml``, ``images[].newName`` and ``digest``: the retrain CronJob's own
  container, which the base names by tag.

It rewrites those lines only (comments and everything else stay byte for byte); re-render afterwards
(``scripts/gitops_render.sh``; ``make pin-image IMAGE=...`` does both). The release step: push the image, read
its digest from the registry (docs/image.md), pin, commit.

Exit 0 pinned; 2 the reference is not ``REPOSITORY@sha256:<64 lowercase hex>`` (a tag is refused: it can move),
or a file lacks exactly one of the lines to rewrite. Nothing is written unless both files can be.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "k8s" / "overlays" / "prod"
# A registry host (optional port) and path in lowercase, then the digest; no tag.
REFERENCE = re.compile(
    r"(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)"
    r"@(?P<digest>sha256:[0-9a-f]{64})"
)
# file -> (line pattern, which part of the reference goes there)
EDITS = {
    "values.yaml": ((r"^  repository: .*$", "repo"), (r"^  digest: .*$", "digest")),
    "kustomization.yaml": ((r"^    newName: .*$", "repo"), (r"^    digest: .*$", "digest")),
}


class PinError(Exception):
    """Bad input: exit 2 with the message."""


def parse(reference: str) -> dict[str, str]:
    match = REFERENCE.fullmatch(reference)
    if match is None:
        raise PinError(
            f"image {reference!r}: want REPOSITORY@sha256:<64 lowercase hex>, e.g. "
            "ghcr.io/you/atft@sha256:" + "0" * 64 + " (a tag is not accepted: it can move)"
        )
    return {"repo": match["repo"], "digest": match["digest"]}


def rewrite(path: Path, text: str, parts: dict[str, str]) -> str:
    """``text`` with each of the file's lines set to its part of the reference."""
    for pattern, part in EDITS[path.name]:
        found = re.findall(pattern, text, flags=re.MULTILINE)
        if len(found) != 1:
            raise PinError(f"{path}: expected one line matching {pattern!r}, found {len(found)}")
        key = pattern[1:].split(":")[0]  # the line's indentation and key, e.g. "  repository"
        text = re.sub(pattern, f"{key}: {parts[part]}", text, flags=re.MULTILINE)
    return text


def pin(overlay: Path, reference: str) -> list[Path]:
    """Write ``reference`` into the overlay's files; returns the files that changed."""
    parts = parse(reference)
    new = {}
    for name in EDITS:
        path = overlay / name
        if not path.is_file():
            raise PinError(f"{path}: no such file")
        new[path] = rewrite(path, path.read_text(), parts)
    changed = [path for path, text in new.items() if path.read_text() != text]
    for path in changed:
        path.write_text(new[path])
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("image", help="REPOSITORY@sha256:HEX, as the registry reports it after the push")
    parser.add_argument("--overlay", type=Path, default=OVERLAY, help="the overlay folder (default: k8s/overlays/prod)")
    args = parser.parse_args(argv)
    try:
        changed = pin(args.overlay, args.image)
    except PinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"pinned {path}", file=sys.stderr)
    if not changed:
        print(f"{args.overlay} already pins {args.image}", file=sys.stderr)
    print("next: scripts/gitops_render.sh (make pin-image runs it), then commit k8s/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
