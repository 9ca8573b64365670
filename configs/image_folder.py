"""Your own still images (faces, birds, ...): landmarks learnt from a folder of unrelated photos.

  python -m landmarks_jax.main --config=configs/image_folder.py --config.dataset_path=/my/images \
      --workdir=runs/images

Images have no temporal partner, so, as the original prescribes for static images, the pose varies through the
thin-plate-spline warp alone (use_warped, not use_temporal). Images are split at random (10 % validation, 10 %
test), or by --config.video_split_file; keypoints and crops work as for videos.
"""

from landmarks_jax.configs import video_folder


def get_config():
  """Returns the configuration for a folder of still images."""
  config = video_folder.get_config()
  config.use_temporal = False
  config.use_warped = True
  config.use_fg_bg_mask = False
  return config
