"""Configuration of the synthetic RGB-D scan generator."""

from __future__ import annotations

from dataclasses import dataclass

from tracklift.errors import ConfigError


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a synthetic scan. Same seed + same config → identical arrays.

    The room's geometry depends only on the seed and the room fields (``n_groups``, ``room_size``,
    ``room_shapes``, ``furniture_scale``, ``clutter``, ``wall_height``, ``mesh_resolution``,
    ``min_object_vertices``, ``ceiling``); its appearance (materials, patterns, colours, lights) only on
    ``style_seed`` (the seed when None). So the same seed rendered at another image size or length shows
    the same room, and styles can be held out independently of layouts.

    Args:
        width: image width in pixels (colour and depth share it).
        height: image height in pixels.
        n_frames: number of kept frames. None: a whole-room capture keeps as many as its route needs at
            ``step`` metres per kept frame, clipped to 100-300 (the pace adapts); a number is spread over
            the whole route or cuts it short, as ``frames_span`` says. The ``"walk"`` capture takes 60 if
            None.
        frames_span: what an explicit ``n_frames`` of a whole-room capture covers: ``"route"`` (the
            default) the whole route: fewer frames than it needs are an even subsample of the same video
            (so every scan, however short, sees the whole room), more walk it slower; ``"start"`` the
            beginning of the route at ``step`` metres per frame: the walk stops early, or walks back when
            longer (the capture before this option; a short scan then films a corner).
        frame_skip: the video is rendered at ``frame_skip`` times the kept rate and every
            ``frame_skip``-th frame kept (ScanNet uses every 10th-20th of its 30 frames/s).
        capture: ``"room"`` (a walk covering the whole room, see :mod:`.capture`) or ``"walk"`` (the older
            wander between points of interest, :func:`.trajectory.make_trajectory`).
        mesh: ``"fused"`` (TSDF fusion of the noisy depth frames, decimated, GT voted from the frames, as
            real scans are made; see :mod:`.fusion`) or ``"parts"`` (the exact piecewise procedural mesh).
        voxel_size: TSDF voxel (marching-cubes resolution) of the fused mesh, metres.
        mesh_density: vertices per m² the fused mesh is decimated to (0 = keep the marching-cubes mesh).
        style_seed: seed of the room's appearance (materials, patterns, colours, lights); None = ``seed``.
        styled: draw the appearance from the style (:mod:`.styles`); False keeps the single colour family
            and single white light of the generator before styles (see :meth:`classic`).
        room_shapes: room shapes to draw from: ``"rect"``, ``"L"`` (one corner cut away), ``"two"`` (two
            rooms joined by a wide opening in a partition wall).
        furniture_scale: (min, max) size factor drawn per room for its furniture groups.
        clutter: (min, max) share of small things on tables and shelves that is kept, drawn per room.
        focal: focal length as a fraction of the width (``fx = fy = focal * width``; Kinect ≈ 0.9).
        n_groups: furniture groups to place (a dining set, a desk corner, a bookshelf, a sofa corner, a
            cabinet, a plant, a box stack); groups that do not fit in the room are left out.
        room_size: (min, max) metres of each side of the rectangular room.
        wall_height: (min, max) wall height in metres.
        ceiling: add a ceiling (label ``ceiling``); without it, rays above the walls see nothing.
        mesh_resolution: grid spacing of the triangle mesh in metres (the axis-aligned edge length;
            triangle diagonals are √2 longer). 0.04 gives ScanNet-like density.
        min_object_vertices: small objects are tessellated finer until they have at least this many
            vertices (the evaluator drops instances under 100 vertices).
        step: camera travel between consecutive frames on straight stretches (±20 %; slower in bends),
            metres (about 30 fps video subsampled
            ×10 at walking speed).
        max_turn: largest camera rotation between consecutive frames, degrees (before hand shake).
        camera_height: (min, max) camera height above the floor in metres.
        shake: hand-shake amplitude; 1.0 ≈ 0.6° rotation and 4 mm translation jitter (std).
        depth_noise: scale of the depth noise model σ(z) = 1.2 mm + 1.9 mm·(z − 0.4 m)² (Kinect-like;
            1.9 mm at 1 m, 14 mm at 3 m); 0 disables noise.
        hole_prob: share of pixels lost to random, blob-shaped depth dropouts.
        grazing_angle: degrees between the ray and the surface normal beyond which depth is dropped.
        edge_dropout: probability that the far side of a depth discontinuity is dropped (sensor shadow).
        min_depth: nearest valid depth in metres (closer → 0).
        max_depth: farthest valid depth in metres (farther → 0).
        color_noise: standard deviation of the colour sensor noise, 8-bit levels.
        texture: amplitude of the surface texture (relative albedo variation).
    """

    width: int = 320
    height: int = 240
    n_frames: int | None = None
    frames_span: str = "route"
    frame_skip: int = 10
    capture: str = "room"
    mesh: str = "fused"
    voxel_size: float = 0.02
    mesh_density: float = 625.0
    style_seed: int | None = None
    styled: bool = True
    room_shapes: tuple[str, ...] = ("rect", "rect", "L", "two")
    furniture_scale: tuple[float, float] = (0.85, 1.15)
    clutter: tuple[float, float] = (0.4, 1.0)
    focal: float = 0.9
    n_groups: int = 5
    room_size: tuple[float, float] = (3.5, 5.0)
    wall_height: tuple[float, float] = (2.4, 2.7)
    ceiling: bool = False
    mesh_resolution: float = 0.04
    min_object_vertices: int = 200
    step: float = 0.08
    max_turn: float = 5.0
    camera_height: tuple[float, float] = (1.2, 1.8)
    shake: float = 1.0
    depth_noise: float = 1.0
    hole_prob: float = 0.01
    grazing_angle: float = 80.0
    edge_dropout: float = 0.5
    min_depth: float = 0.3
    max_depth: float = 7.0
    color_noise: float = 2.5
    texture: float = 0.08

    def __post_init__(self):
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"SynthConfig: {what}")

        need(16 <= self.width <= 4096 and 16 <= self.height <= 4096, "width and height must be in [16, 4096]")
        need(self.n_frames is None or 1 <= self.n_frames <= 5000, "n_frames must be None or in [1, 5000]")
        need(1 <= self.frame_skip <= 100, "frame_skip must be in [1, 100]")
        need(self.frames_span in ("route", "start"), 'frames_span must be "route" or "start"')
        need(self.capture in ("room", "walk"), 'capture must be "room" or "walk"')
        need(self.mesh in ("fused", "parts"), 'mesh must be "fused" or "parts"')
        need(0.005 <= self.voxel_size <= 0.2, "voxel_size must be in [0.005, 0.2] metres")
        need(self.mesh_density >= 0, "mesh_density must be >= 0 (0 = no decimation)")
        shapes = self.room_shapes
        need(
            len(shapes) > 0 and all(r in ("rect", "L", "two") for r in shapes),
            'room_shapes: "rect", "L", "two"',
        )
        need(
            0.5 <= self.furniture_scale[0] <= self.furniture_scale[1] <= 1.5,
            "furniture_scale must be in [0.5, 1.5]",
        )
        need(0.0 <= self.clutter[0] <= self.clutter[1] <= 1.0, "clutter must be 0 <= min <= max <= 1")
        need(0.2 <= self.focal <= 5.0, "focal must be in [0.2, 5]")
        need(0 <= self.n_groups <= 12, "n_groups must be in [0, 12]")
        need(3.0 <= self.room_size[0] <= self.room_size[1] <= 12.0, "room_size must be 3 <= min <= max <= 12")
        need(2.2 <= self.wall_height[0] <= self.wall_height[1] <= 4.0, "wall_height must be in [2.2, 4]")
        need(0.005 <= self.mesh_resolution <= 0.2, "mesh_resolution must be in [0.005, 0.2] metres")
        need(self.min_object_vertices >= 0, "min_object_vertices must be >= 0")
        need(0.005 <= self.step <= 0.5, "step must be in [0.005, 0.5] metres")
        need(0.5 <= self.max_turn <= 45.0, "max_turn must be in [0.5, 45] degrees")
        lo, hi = self.camera_height
        need(0.8 <= lo <= hi <= min(2.0, self.wall_height[0] - 0.2), "camera_height must be in [0.8, 2.0]")
        need(self.shake >= 0 and self.depth_noise >= 0 and self.color_noise >= 0, "noise levels must be >= 0")
        need(0.0 <= self.hole_prob < 0.5, "hole_prob must be in [0, 0.5)")
        need(45.0 <= self.grazing_angle <= 90.0, "grazing_angle must be in [45, 90] degrees")
        need(0.0 <= self.edge_dropout <= 1.0, "edge_dropout must be in [0, 1]")
        need(0.0 <= self.min_depth < self.max_depth, "need 0 <= min_depth < max_depth")
        need(0.0 <= self.texture <= 0.5, "texture must be in [0, 0.5]")

    @classmethod
    def classic(cls, **overrides) -> SynthConfig:
        """The generator as it was before whole-room captures, fused meshes and styles: rectangular rooms,
        furniture at its drawn size with all its clutter, one colour family and one white light, the
        wandering walk of ``n_frames`` (60 if unset) and the piecewise mesh. Same seed → the same arrays
        as then, so earlier figures and tests reproduce."""
        base = {
            "capture": "walk",
            "mesh": "parts",
            "room_shapes": ("rect",),
            "furniture_scale": (1.0, 1.0),
            "clutter": (1.0, 1.0),
            "styled": False,
        }
        return cls(**{**base, **overrides})

    @property
    def room_fields(self) -> tuple:
        """The fields the room layout depends on (the rest only change the video)."""
        return (
            self.n_groups,
            self.room_size,
            self.room_shapes,
            self.furniture_scale,
            self.clutter,
            self.wall_height,
            self.ceiling,
            self.mesh_resolution,
            self.min_object_vertices,
        )


#: The defaults (frozen, so safe to share as a default argument).
DEFAULT_CONFIG = SynthConfig()
