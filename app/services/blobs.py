"""Content-addressed image store on disk: `<root>/<sha[:2]>/<sha>.<ext>`, written atomically."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MEDIA_TYPES = {"webp": "image/webp", "png": "image/png"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
"""The IEND chunk (length 0, type, CRC) that ends every PNG."""
SOURCE_FORMATS = ("PNG", "JPEG", "WEBP")
LOSSY_QUALITY = 90


@dataclass(frozen=True)
class Encoded:
    lossless_sha256: str
    lossy_sha256: str
    png_sha256: str


def served_name(key: str, sha256: str) -> str:
    """The name an experiment serves an image under: HMAC-SHA256(key, content sha256), hex.

    Hashing a released stimulus image gives its sha256, not this name, so a participant cannot
    look up which served image is which from the images' content; the name is still fixed per
    experiment and image, so it stays immutable and cacheable.
    """
    return hmac.new(bytes.fromhex(key), sha256.encode(), hashlib.sha256).hexdigest()


class BlobStore:
    """Immutable blobs named by the sha256 of their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def put(self, data: bytes, ext: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self.path_for(sha, ext)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return sha

    def alias(self, sha256: str, ext: str, name: str) -> None:
        """Make blob `sha256` also available as `name` (a hard link, same folder layout), so
        that nginx and the app serve `/img/<name>.<ext>` like any blob."""
        target = self.path_for(name, ext)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{name}.{os.getpid()}"
        try:
            try:
                os.link(self.path_for(sha256, ext), tmp)
            except OSError:  # a filesystem without hard links
                shutil.copyfile(self.path_for(sha256, ext), tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def encode_and_put(self, source: Path) -> Encoded:
        """Store `source` as lossless WebP, lossy WebP (q90) and PNG; return their hashes."""
        with Image.open(source, formats=SOURCE_FORMATS) as img:
            rgb = img.convert("RGB")
        lossless = io.BytesIO()
        rgb.save(lossless, format="WEBP", lossless=True, quality=50, method=2)
        lossy = io.BytesIO()
        rgb.save(lossy, format="WEBP", quality=LOSSY_QUALITY, method=4)
        raw = source.read_bytes()
        if raw[:8] == PNG_SIGNATURE and raw.find(PNG_END) == len(raw) - len(PNG_END):
            # Kept byte for byte only when nothing follows the image's end: bytes appended to
            # a PNG (HTML, a script) would otherwise be served under image/png.
            png = raw
        else:
            buf = io.BytesIO()
            rgb.save(buf, format="PNG", optimize=True)
            png = buf.getvalue()
        return Encoded(
            lossless_sha256=self.put(lossless.getvalue(), "webp"),
            lossy_sha256=self.put(lossy.getvalue(), "webp"),
            png_sha256=self.put(png, "png"),
        )
