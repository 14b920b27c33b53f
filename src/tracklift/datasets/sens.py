"""ScanNet's ``.sens`` RGB-D stream (version 4): a header-only index for lazy frame reads, and a writer.

Layout (little-endian)::

    uint32 version (4) | uint64 n | char[n] sensor name
    float32[16] intrinsic_color | extrinsic_color | intrinsic_depth | extrinsic_depth   (row-major 4x4)
    int32 color_compression (0 raw, 1 png, 2 jpeg) | int32 depth_compression (0 raw, 1 zlib, 2 occi)
    uint32 color_width, color_height, depth_width, depth_height | float32 depth_shift | uint64 num_frames
    per frame: float32[16] camera_to_world | uint64 timestamp_color, timestamp_depth
               uint64 color_bytes, depth_bytes | color payload | depth payload (uint16 rows, H x W)

Opening reads only the frame headers (96 bytes each, seeking over the payloads); a frame's payloads are
fetched by byte range when asked for, so a scene over S3 costs one range request per frame.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from tracklift import storage
from tracklift.datasets.images import decode_image
from tracklift.errors import DataError

VERSION = 4
COLOR_RAW, COLOR_PNG, COLOR_JPEG = 0, 1, 2
DEPTH_RAW, DEPTH_ZLIB, DEPTH_OCCI = 0, 1, 2
_FRAME_HEAD = struct.Struct("<16f4Q")  # pose, ts_color, ts_depth, color_bytes, depth_bytes
_TAIL = struct.Struct("<2i4IfQ")  # compressions, sizes, depth shift, frame count
# Small read-ahead for the header scan: each frame header sits after ~100-200 KB of payload, so a large
# block would drag every payload over the network just to find the next header.
_INDEX_BLOCK = 1 << 16


@dataclass
class SensHeader:
    """The fixed part of a ``.sens`` file. Matrices are (4, 4) float64; sizes in pixels."""

    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    extrinsic_color: np.ndarray = field(default_factory=lambda: np.eye(4))
    extrinsic_depth: np.ndarray = field(default_factory=lambda: np.eye(4))
    color_compression: int = COLOR_JPEG
    depth_compression: int = DEPTH_ZLIB
    depth_shift: float = 1000.0
    sensor_name: str = "StructureSensor"
    num_frames: int = 0

    def pack(self) -> bytes:
        name = self.sensor_name.encode("utf-8")
        mats = [self.intrinsic_color, self.extrinsic_color, self.intrinsic_depth, self.extrinsic_depth]
        return (
            struct.pack("<IQ", VERSION, len(name))
            + name
            + b"".join(np.asarray(m, dtype="<f4").reshape(16).tobytes() for m in mats)
            + _TAIL.pack(
                self.color_compression,
                self.depth_compression,
                self.color_width,
                self.color_height,
                self.depth_width,
                self.depth_height,
                self.depth_shift,
                self.num_frames,
            )
        )


@dataclass
class SensIndex:
    """Where each frame's payloads are.

    Attributes:
        url: the ``.sens`` file.
        header: its :class:`SensHeader`.
        poses: (F, 4, 4) float64 camera→world as stored (``-inf`` where tracking was lost).
        color_offset: (F,) int64 byte offset of each colour payload.
        color_bytes, depth_bytes: (F,) int64 payload sizes (depth follows colour).
    """

    url: str
    header: SensHeader
    poses: np.ndarray
    color_offset: np.ndarray
    color_bytes: np.ndarray
    depth_bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.poses)


def _read_exact(f, n: int, url: str, what: str, size: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(url, f"truncated: {what} is cut off (the file has {size} bytes)")
    return data


def read_index(url: str) -> SensIndex:
    """Read the header and every frame header of a ``.sens`` file (not the payloads)."""
    fs, path = storage.filesystem(url)
    try:
        size = fs.size(path)
    except FileNotFoundError:
        raise DataError(url, "file not found") from None
    with fs.open(path, "rb", block_size=_INDEX_BLOCK) as f:
        version, name_len = struct.unpack("<IQ", _read_exact(f, 12, url, "the header", size))
        if version != VERSION:
            raise DataError(url, f"unsupported .sens version {version} (expected {VERSION})")
        if name_len > 1 << 16:
            raise DataError(url, f"implausible sensor-name length {name_len}: not a .sens file?")
        name = _read_exact(f, name_len, url, "the header", size).decode("utf-8", "replace")
        mats = np.frombuffer(_read_exact(f, 256, url, "the header", size), dtype="<f4").astype(np.float64)
        mats = mats.reshape(4, 4, 4)
        cc, dc, cw, ch, dw, dh, shift, n = _TAIL.unpack(_read_exact(f, _TAIL.size, url, "the header", size))
        header = SensHeader(
            intrinsic_color=mats[0],
            extrinsic_color=mats[1],
            intrinsic_depth=mats[2],
            extrinsic_depth=mats[3],
            color_compression=cc,
            depth_compression=dc,
            color_width=cw,
            color_height=ch,
            depth_width=dw,
            depth_height=dh,
            depth_shift=float(shift),
            sensor_name=name,
            num_frames=n,
        )
        if n > size // _FRAME_HEAD.size:
            raise DataError(url, f"truncated: header says {n} frames, the file has only {size} bytes")
        poses = np.empty((n, 4, 4))
        offset = np.empty(n, np.int64)
        cbytes = np.empty(n, np.int64)
        dbytes = np.empty(n, np.int64)
        pos = f.tell()
        for i in range(n):
            head = _read_exact(f, _FRAME_HEAD.size, url, f"the header of frame {i} of {n}", size)
            vals = _FRAME_HEAD.unpack(head)
            poses[i] = np.asarray(vals[:16], dtype=np.float64).reshape(4, 4)
            cbytes[i], dbytes[i] = vals[18], vals[19]
            offset[i] = pos + _FRAME_HEAD.size
            pos = int(offset[i] + cbytes[i] + dbytes[i])
            if pos > size:
                raise DataError(url, f"truncated: frame {i} of {n} ends at byte {pos}, the file has {size}")
            f.seek(pos)
    return SensIndex(url, header, poses, offset, cbytes, dbytes)


def read_frame(index: SensIndex, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode frame ``k`` (0-based position in the file).

    Returns:
        ``(color (Hc, Wc, 3) uint8, depth (Hd, Wd) uint16 in units of 1/depth_shift metres)``.
    """
    h = index.header
    url = index.url
    fs, path = storage.filesystem(url)
    start = int(index.color_offset[k])
    data = fs.cat_file(path, start=start, end=start + int(index.color_bytes[k] + index.depth_bytes[k]))
    cpay, dpay = data[: index.color_bytes[k]], data[index.color_bytes[k] :]
    where = f"{url}#frame{k}"
    if h.color_compression in (COLOR_JPEG, COLOR_PNG):
        color = decode_image(cpay, where)
        if color.ndim != 3:
            raise DataError(where, "colour payload is not an RGB image")
    elif h.color_compression == COLOR_RAW:
        if len(cpay) != h.color_width * h.color_height * 3:
            raise DataError(
                where,
                f"raw colour payload has {len(cpay)} bytes, expected {h.color_width}x{h.color_height}x3",
            )
        color = np.frombuffer(cpay, np.uint8).reshape(h.color_height, h.color_width, 3)
    else:
        raise DataError(url, f"unsupported colour compression {h.color_compression}")
    if h.depth_compression == DEPTH_ZLIB:
        try:
            dpay = zlib.decompress(dpay)
        except zlib.error as e:
            raise DataError(where, f"corrupt zlib depth payload ({e})") from None
    elif h.depth_compression != DEPTH_RAW:
        raise DataError(url, f"unsupported depth compression {h.depth_compression} (only raw and zlib)")
    expected = h.depth_width * h.depth_height * 2
    if len(dpay) != expected:
        raise DataError(
            where, f"depth payload holds {len(dpay)} bytes, expected {h.depth_width}x{h.depth_height} uint16"
        )
    depth = np.frombuffer(dpay, dtype="<u2").reshape(h.depth_height, h.depth_width)
    return color, depth


def encode_frame(pose: np.ndarray, color_payload: bytes, depth: np.ndarray, timestamp: int = 0) -> bytes:
    """One frame record: pose (4, 4) camera→world, an encoded colour image, depth (H, W) uint16."""
    dpay = zlib.compress(np.ascontiguousarray(depth, dtype="<u2").tobytes(), 6)
    pose16 = np.asarray(pose, dtype=np.float64).reshape(16).tolist()
    head = _FRAME_HEAD.pack(*pose16, timestamp, timestamp, len(color_payload), len(dpay))
    return head + color_payload + dpay


def write_sens(url: str, header: SensHeader, frames: list[bytes]) -> None:
    """Write a ``.sens`` file from a header and records made by :func:`encode_frame` (atomically)."""
    header.num_frames = len(frames)
    storage.write_bytes(url, header.pack() + b"".join(frames))
