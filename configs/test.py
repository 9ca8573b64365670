"""A tiny configuration for tests and smoke runs: every part of the model on, narrow and small.

python -m landmarks_jax.main --config=configs/test.py --workdir=/tmp/landmarks_test
"""

from landmarks_jax.configs import default


def get_config():
  """Returns the tiny test configuration."""
  config = default.get_config()
  config.dataset = 'humanoid_mocap'
  config.dataset_variant = 'tiny'
  config.img_size = 32
  config.n_landmarks = 4
  config.batch_size = 2
  config.nsf = 2
  config.shape_decoder_widths = (16, 16, 16)
  config.appearance_decoder_width = 8
  config.n_filters = 8
  config.ngc = 8
  config.spade_hidden = 8
  config.background_filters = 4
  config.background_decoder_widths = (4, 4, 4)
  config.mask_filters = 4
  config.mask_decoder_widths = (4, 4, 4)
  config.low_res_mask_width = 4
  config.ndf = 8
  config.use_fg_bg_mask = True
  config.use_gan = True
  config.use_temporal = True
  config.use_warped = True
  config.vgg_random_init = True
  config.num_workers = 0  # training batches made in this process: tests start no worker processes
  config.num_train_steps = 4
  config.save_every_steps = 2
  config.log_every_steps = 1
  config.log_images_every_steps = 2
  config.val_every_steps = 2
  config.num_val_images = 2
  return config
