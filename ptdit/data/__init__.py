"""Training data: caption folders for images, video and multi-view; aspect buckets; caches."""

from .buckets import BucketBatchSampler, BucketSet, as_bucket_set, nearest_bucket, size_multiple
from .cache import LatentCache, file_identity
from .folders import FolderDataset, natural_key
from .images import ImageFolderDataset
from .multiview import MultiViewFolderDataset
from .videos import VideoFolderDataset, VideoTooShort

__all__ = [
    "BucketBatchSampler",
    "BucketSet",
    "FolderDataset",
    "ImageFolderDataset",
    "LatentCache",
    "MultiViewFolderDataset",
    "VideoFolderDataset",
    "VideoTooShort",
    "as_bucket_set",
    "file_identity",
    "natural_key",
    "nearest_bucket",
    "size_multiple",
]
