"""BBC Pose, as the original's configs/train_args_bbc_pose.yaml trains it.

  python -m landmarks_jax.main --config=configs/bbc.py --workdir=runs/bbc \
      --config.dataset_path=/path/to/bbcpose

The original trains this recipe on one GPU (use_DDP: False) with 16 images a step. global_batch_size=16 keeps
exactly that on any number of devices: the same steps at the same learning rate, 16 / devices per device.
For 16 per device instead (16 x devices a step, as the original's DDP would run it), add
--config.global_batch_size=0 --config.batch_size=16 and consider raising the learning rate.
"""

from landmarks_jax.configs import default


def get_config():
  """Returns the BBC Pose configuration."""
  config = default.get_config()
  config.epochs = 2000
  config.batch_size = 16
  config.global_batch_size = 16  # The original's single-GPU batch, split over however many devices there are.
  config.n_landmarks = 30
  config.color_jitter = True
  config.dataset = 'bbc_pose'
  config.fixed_covar = 0.008
  config.flip_probability = 0.0
  config.img_size = 128
  config.learning_rate = 0.0001
  config.no_grad_clip = True
  config.num_workers = 8
  config.reduced_w = True
  config.use_gan = False
  config.use_identity_covariance = False
  config.use_vgg = True
  config.use_temporal = True
  config.val_frac = 0.01
  config.val_freq = 2
  config.vgg_lambda = 5.0
  return config
