"""Codecs of ScanNet++'s iPhone files: ``depth.bin`` (both encodings) and ``rgb.mkv`` (PyAV).

``depth.bin`` comes in two encodings (the ScanNet++ toolkit's ``prepare_iphone_data.py`` tries both):
  - ``stream``: one raw-deflate stream (``zlib.decompress(data, wbits=-15)``) of float32 metres, frames of
    H x W pixels back to back;
  - ``lz4``: per frame a little-endian ``uint32`` size and an LZ4 block of uint16 millimetres (a few files
    hold raw-deflate float32 blocks instead: ``deflate-frames``).

Random access: per-frame encodings are indexed by their size words; the deflate stream is scanned once and
the decompressor state is saved every ``_SNAP_BYTES`` of output (``zlib.decompressobj().copy()``), so a
frame costs at most that much decompression instead of the whole file.
"""

from __future__ import annotations

import io
import struct
import zlib

import lz4.block
import numpy as np

from tracklift import storage
from tracklift.errors import DataError

# Layout of a scene folder (``data/<scene_id>/``).
MESH = "mesh_aligned_0.05.ply"
MASK = "mesh_aligned_0.05_mask.txt"
POSE_JSON = "pose_intrinsic_imu.json"
CLASS_LIST = "semantic_classes.txt"
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips y and z: OpenGL camera axes <-> OpenCV camera axes

_SNAP_BYTES = 1 << 21  # decompressor snapshot every 2 MiB of output (~10 frames of 256x192 float32)
_READ = 1 << 18
_PROBE_MAX = 1 << 25  # largest first frame accepted when probing an LZ4 block (4096x4096 uint16)


class DepthBin:
    """Random access to the frames of an iPhone ``depth.bin``.

    Args:
        url: the file.

    Attributes:
        encoding: ``"lz4"``, ``"deflate-frames"`` or ``"stream"``.
        frame_pixels: pixels per frame when the encoding tells (per-frame encodings), else None.
        stream_bytes: decompressed size of a ``stream`` file (frames are cut from it once the frame size
            is set with :meth:`set_frame_pixels`).
    """

    def __init__(self, url: str):
        self.url = url
        self.frame_pixels: int | None = None
        self.stream_bytes = 0
        self._offsets = np.zeros(0, np.int64)  # per-frame encodings: payload offset and size
        self._sizes = np.zeros(0, np.int64)
        self._snaps: list[tuple[int, int, object]] = []  # stream: (output offset, input offset, state)
        self._index()

    # Snapshots of a zlib state cannot be pickled: a copy sent to a Ray worker re-indexes on arrival.
    def __getstate__(self):
        return {"url": self.url, "frame_pixels": self.frame_pixels, "encoding": self.encoding}

    def __setstate__(self, state):
        fixed = state["frame_pixels"] if state["encoding"] == "stream" else None
        self.__init__(state["url"])
        if fixed is not None:
            self.set_frame_pixels(fixed)

    def __len__(self) -> int:
        if self.encoding == "stream":
            return self.stream_bytes // (4 * self.frame_pixels) if self.frame_pixels else 0
        return len(self._sizes)

    def _index(self) -> None:
        fs, path = storage.filesystem(self.url)
        try:
            size = fs.size(path)
        except FileNotFoundError:
            raise DataError(self.url, "file not found") from None
        if size == 0:
            raise DataError(self.url, "empty depth file")
        with fs.open(path, "rb", block_size=1 << 16) as f:
            head = f.read(4)
            first = struct.unpack("<I", head)[0] if len(head) == 4 else 0
            if 0 < first <= size - 4:
                kind, pixels = _probe_frame(f.read(first))
                if kind is not None:
                    self.encoding, self.frame_pixels = kind, pixels
                    self._index_frames(f, size)
                    return
            f.seek(0)
            self.encoding = "stream"
            self._index_stream(f)

    def _index_frames(self, f, size: int) -> None:
        offsets, sizes, pos, k = [], [], 0, 0
        while pos < size:
            f.seek(pos)
            head = f.read(4)
            if len(head) != 4:
                raise DataError(self.url, f"truncated: frame {k} has an incomplete size word")
            n = struct.unpack("<I", head)[0]
            if pos + 4 + n > size:
                raise DataError(
                    self.url, f"truncated: frame {k} needs {n} bytes at {pos + 4}, the file has {size}"
                )
            offsets.append(pos + 4)
            sizes.append(n)
            pos += 4 + n
            k += 1
        self._offsets, self._sizes = np.asarray(offsets, np.int64), np.asarray(sizes, np.int64)

    def _index_stream(self, f) -> None:
        d = zlib.decompressobj(-15)
        self._snaps = [(0, 0, d.copy())]
        out_total, in_pos, tail, at_eof = 0, 0, b"", False
        try:
            while not d.eof:
                if not tail and not at_eof:
                    tail = f.read(_READ)
                    in_pos += len(tail)
                    at_eof = not tail
                want = _SNAP_BYTES - out_total % _SNAP_BYTES
                out = d.decompress(tail, want)
                tail = d.unconsumed_tail
                out_total += len(out)
                if not out and at_eof:
                    break
                if out and out_total % _SNAP_BYTES == 0:
                    self._snaps.append((out_total, in_pos - len(tail), d.copy()))
        except zlib.error as e:
            raise DataError(
                self.url, f"not a depth.bin in a known encoding (raw-deflate stream: {e})"
            ) from None
        if not d.eof:
            raise DataError(
                self.url, f"truncated: the deflate stream ends early after {out_total} bytes of depth"
            )
        self.stream_bytes = out_total

    def set_frame_pixels(self, pixels: int) -> None:
        """Fix the frame size of a ``stream`` file (it does not record one); checks it divides the data."""
        if self.encoding != "stream":
            if pixels != self.frame_pixels:
                raise DataError(self.url, f"frames hold {self.frame_pixels} pixels, expected {pixels}")
            return
        if pixels <= 0 or self.stream_bytes % (4 * pixels):
            raise DataError(
                self.url,
                f"{self.stream_bytes} bytes of float32 depth are not a whole number of {pixels}-pixel frames",
            )
        self.frame_pixels = pixels

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as (frame_pixels,) float32 metres (invalid and non-finite values → 0)."""
        if not 0 <= k < len(self):
            raise DataError(self.url, f"no depth frame {k} (the file holds {len(self)})")
        if self.encoding == "stream":
            raw = self._stream_bytes(k * 4 * self.frame_pixels, 4 * self.frame_pixels)
            depth = np.frombuffer(raw, dtype="<f4").copy()
        else:
            fs, path = storage.filesystem(self.url)
            start = int(self._offsets[k])
            data = fs.cat_file(path, start=start, end=start + int(self._sizes[k]))
            depth = _decode_frame(data, self.encoding, self.frame_pixels, f"{self.url}#frame{k}")
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        return depth

    def _stream_bytes(self, start: int, n: int) -> bytes:
        out_off, in_off, state = max((s for s in self._snaps if s[0] <= start), key=lambda s: s[0])
        d = state.copy()
        skip, parts, got = start - out_off, [], 0
        fs, path = storage.filesystem(self.url)
        with fs.open(path, "rb") as f:
            f.seek(in_off)
            tail, at_eof = b"", False
            while got < n:
                if not tail and not at_eof:
                    tail = f.read(_READ)
                    at_eof = not tail
                out = d.decompress(tail, skip if skip else n - got)
                tail = d.unconsumed_tail
                if not out:
                    if at_eof or d.eof:
                        raise DataError(self.url, "deflate stream ended before the requested frame")
                    continue
                if skip:
                    skip -= len(out)
                else:
                    parts.append(out)
                    got += len(out)
        return b"".join(parts)


def _probe_frame(data: bytes) -> tuple[str | None, int | None]:
    """Is ``data`` one per-frame record? Returns ``(encoding, pixels)`` or ``(None, None)``."""
    try:
        raw = lz4.block.decompress(data, uncompressed_size=_PROBE_MAX)
        if raw and len(raw) % 2 == 0:
            return "lz4", len(raw) // 2
    except lz4.block.LZ4BlockError:
        pass
    try:
        d = zlib.decompressobj(-15)
        raw = d.decompress(data, _PROBE_MAX)
        if d.eof and not d.unused_data and raw and len(raw) % 4 == 0:
            return "deflate-frames", len(raw) // 4
    except zlib.error:
        pass
    return None, None


def _decode_frame(data: bytes, encoding: str, pixels: int, where: str) -> np.ndarray:
    try:
        if encoding == "lz4":
            raw = lz4.block.decompress(data, uncompressed_size=2 * pixels)
            if len(raw) != 2 * pixels:
                raise DataError(where, f"depth frame holds {len(raw) // 2} pixels, expected {pixels}")
            return np.frombuffer(raw, dtype="<u2").astype(np.float32) / 1000.0
        raw = zlib.decompress(data, wbits=-15)
    except (lz4.block.LZ4BlockError, zlib.error) as e:
        raise DataError(where, f"corrupt depth frame, or not {pixels} pixels ({e})") from None
    if len(raw) != 4 * pixels:
        raise DataError(where, f"depth frame holds {len(raw) // 4} pixels, expected {pixels}")
    return np.frombuffer(raw, dtype="<f4").copy()


def encode_depth_bin(frames: list[np.ndarray], encoding: str = "lz4") -> bytes:
    """Encode (H, W) float32 metre depth frames as a ``depth.bin`` (``"lz4"`` mm or ``"stream"`` float32)."""
    if encoding == "lz4":
        parts = []
        for d in frames:
            mm = np.clip(np.round(np.nan_to_num(d, nan=0.0, posinf=0.0) * 1000.0), 0, 65535).astype("<u2")
            block = lz4.block.compress(mm.tobytes(), store_size=False)
            parts += [struct.pack("<I", len(block)), block]
        return b"".join(parts)
    if encoding == "stream":
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = b"".join(c.compress(np.asarray(d, dtype="<f4").tobytes()) for d in frames)
        return body + c.flush()
    raise ValueError(f"unknown depth.bin encoding {encoding!r} (lz4 or stream)")


# ---------------------------------------------------------------------------------------------- video


class VideoFrames:
    """Frames of a video by frame number, decoded with PyAV (seek to the keyframe before, decode on).

    Args:
        url: the video file (``iphone/rgb.mkv`` or ``rgb.mp4``).
    """

    def __init__(self, url: str):
        self.url = url
        self._container = None
        self._file = None

    def __getstate__(self):
        return {"url": self.url}

    def __setstate__(self, state):
        self.__init__(state["url"])

    def _open(self):
        if self._container is None:
            import av

            fs, path = storage.filesystem(self.url)
            self._file = fs.open(path, "rb")
            try:
                self._container = av.open(self._file)
            except av.error.FFmpegError as e:
                raise DataError(self.url, f"unreadable video ({e})") from None
        return self._container, self._container.streams.video[0]

    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        _, st = self._open()
        return st.codec_context.width, st.codec_context.height

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` (0-based) as (H, W, 3) uint8 RGB."""
        import av

        c, st = self._open()
        rate = st.average_rate or st.guessed_rate
        if not rate:
            raise DataError(self.url, "video stream has no frame rate")
        start = st.start_time or 0
        try:
            c.seek(int(start + k / rate / st.time_base), stream=st, backward=True, any_frame=False)
            for fr in c.decode(st):
                if fr.pts is None:
                    continue
                idx = round(float((fr.pts - start) * st.time_base * rate))
                if idx == k:
                    return fr.to_ndarray(format="rgb24")
                if idx > k:
                    break
        except av.error.FFmpegError as e:
            raise DataError(self.url, f"cannot decode frame {k} ({e})") from None
        raise DataError(self.url, f"video has no frame {k}")


def encode_video(frames: list[np.ndarray], fps: int = 30) -> bytes:
    """Encode (H, W, 3) uint8 RGB frames as a lossless FFV1 Matroska video (needs PyAV)."""
    import av

    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as c:
        st = c.add_stream("ffv1", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "bgr0"  # RGB kept exactly (no YUV subsampling)
        for img in frames:
            c.mux(st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        c.mux(st.encode())
    return buf.getvalue()
