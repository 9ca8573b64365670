"""The embedded default: the humanoid motion-capture dataset, sized for a laptop CPU.

  python -m landmarks_jax.main --config=configs/humanoid_mocap.py --workdir=runs/mocap

The first run renders the dataset (about a minute), then trains for about 10 minutes on 2 CPU cores
(stopping 14 minutes after the start on a slower CPU; run it again to train on) and evaluates the landmarks
against the ground-truth joints and masks, beside the mean-pose and all-foreground floors. The model and its
recipe are BBC Pose's (temporal pairs, foreground masks, reduced perceptual weights, no gradient clipping)
at 64 px with narrow networks, with partner frames further apart and the foreground mask drawn by the
landmarks' own Gaussians instead of a mask network (README, "What the first command does, and what it
reaches"); raise img_size and the widths toward configs/bbc.py on a GPU.
"""

from landmarks_jax.configs import default


def get_config():
  """Returns the embedded-dataset configuration."""
  config = default.get_config()
  config.dataset = 'humanoid_mocap'
  config.dataset_variant = 'full'
  config.img_size = 64
  config.n_landmarks = 16
  config.batch_size = 8
  config.use_temporal = True
  # Partners 15 to 59 frames apart (0.5 to 2 s): the body moves enough that copying the partner's frame
  # cannot explain it, and the landmarks must.
  config.temporal_range = (15, 60)
  config.use_warped = False
  config.use_fg_bg_mask = True
  # The mask is where the landmarks' Gaussians are: the background network cannot take over the body, and
  # the Gaussians must cover it. A mask network swaps the roles here (README).
  config.gaussian_fg_mask = True
  config.use_gan = False
  config.learning_rate = 1e-3
  config.no_grad_clip = True
  config.reduced_w = True
  # Narrow networks: the original's widths divided by 2 to 8.
  config.nsf = 8
  config.naf = 16
  config.shape_decoder_widths = (64, 64, 32)
  config.appearance_decoder_width = 32
  config.n_filters = 16
  config.ngc = 16
  config.spade_hidden = 32
  config.background_filters = 8
  config.background_decoder_widths = (16, 16, 16)
  # The mask network's widths, used only when --config.gaussian_fg_mask=False brings it back.
  config.mask_filters = 8
  config.mask_decoder_widths = (16, 16, 16)
  config.num_train_steps = 800
  # On a slow or busy CPU, stop early enough that install, data, training and evaluation fit in 20 minutes;
  # the same command run again trains on to step 800.
  config.time_limit_minutes = 14.0
  config.log_every_steps = 100
  config.log_images_every_steps = 500
  config.val_every_steps = 800
  config.save_every_steps = 400
  return config
