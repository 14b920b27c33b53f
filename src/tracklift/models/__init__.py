"""The 3D network: sparse-voxel UNet + query mask decoder (per superpoint or per voxel), Hungarian-matched
losses, inference.

Public API::

    cfg = ModelConfig.preset("default")               # superpoint decoding; "small": point level; "tiny"
    model = Segmenter.from_config(cfg)                # backend "torch" unless cfg.backend says otherwise
    losses = model(PointBatch.collate(samples))       # training mode + targets → loss dict; sum the values
    inst = model.predict(points, colors)              # Instances: (K, N) bool masks, (K,) scores
    inst = model.predict(points, colors, superpoints) # with the scan's own superpoints (else computed)
    save_checkpoint(model, "s3://bucket/ckpt.pt");  model = Segmenter.from_checkpoint("s3://bucket/ckpt.pt")

Imports go one way: ``sparse`` (the backend interface) ← ``backends`` (the implementations and their
name table, ``backends.registry``) ← ``sparse_nn`` ← ``unet`` ← ``segmenter``; ``superpoints`` (getting,
numbering and pooling superpoints) ← ``superpoint_decoder`` ← ``segmenter``; ``checkpoint`` (file format,
weight loading; imports only ``config``) ← ``segmenter`` (whose ``from_checkpoint`` is the one loader).
"""

from tracklift.models.backends.registry import available_backends, get_backend, installed_backends
from tracklift.models.batch import PointBatch
from tracklift.models.checkpoint import load_weights, read_checkpoint, save_checkpoint
from tracklift.models.config import (
    DecoderConfig,
    InferenceConfig,
    LossConfig,
    ModelConfig,
    SuperpointConfig,
    UNetConfig,
)
from tracklift.models.decoder import DecoderOutput, QueryDecoder
from tracklift.models.matcher import HungarianMatcher
from tracklift.models.segmenter import Segmenter, SegmenterOutput
from tracklift.models.sparse import SparseBackend, SparseTensor, voxelize
from tracklift.models.superpoint_decoder import SuperpointDecoder
from tracklift.models.superpoints import BatchSuperpoints, cloud_superpoints
from tracklift.models.unet import SparseUNet

# The functional name of the one "build a model from a checkpoint" loader.
load_checkpoint = Segmenter.from_checkpoint

__all__ = [
    "BatchSuperpoints",
    "DecoderConfig",
    "DecoderOutput",
    "HungarianMatcher",
    "InferenceConfig",
    "LossConfig",
    "ModelConfig",
    "PointBatch",
    "QueryDecoder",
    "Segmenter",
    "SegmenterOutput",
    "SparseBackend",
    "SparseTensor",
    "SparseUNet",
    "SuperpointConfig",
    "SuperpointDecoder",
    "UNetConfig",
    "available_backends",
    "cloud_superpoints",
    "get_backend",
    "installed_backends",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
    "voxelize",
]
