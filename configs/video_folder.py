"""Your own videos: landmarks learnt from a folder of videos (or frame folders) with temporal partners.

  python -m landmarks_jax.main --config=configs/video_folder.py --config.dataset_path=/my/videos \
      --workdir=runs/mine

The folder's videos are split by video (10 % validation, 10 % test); with a keypoint CSV
(--config.video_keypoints=keypoints.csv: video,frame,keypoint,x,y) evaluation regresses them from the landmarks.
The recipe is BBC Pose's (128 px, 30 landmarks, 16 images a step) with the foreground/background factorisation
on, counted in steps rather than epochs since folders differ in size; a folder of still images (no videos)
needs configs/image_folder.py, which takes its pose variation from warps alone.
"""

from landmarks_jax.configs import bbc


def get_config():
  """Returns the configuration for a folder of videos."""
  config = bbc.get_config()
  config.dataset = 'video_folder'
  config.use_fg_bg_mask = True
  config.num_train_steps = 20000
  config.save_every_steps = 1000
  config.val_every_steps = 1000
  return config
