"""The data: datasets built from the pipelines in data_pipelines/, the input pipeline that makes training pairs,
frames, pixels, video files and the pairs' augmentations."""
