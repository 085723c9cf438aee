"""Training data: caption folders for images, video and multi-view; aspect buckets; caches."""
