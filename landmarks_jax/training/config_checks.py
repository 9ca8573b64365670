"""The options' vocabulary (the values each may take, which a resumed run may change, their JSON form) and the
checks of a configuration before anything is built, with messages that say how to fix each value."""

import json

import ml_collections

from landmarks_jax import user_errors
from landmarks_jax.data.datasets import DATASETS

DATASET_VARIANTS = ('full', 'tiny')
VGG_LAYOUTS = ('vgg16', 'vgg19')
COMPUTE_DTYPES = ('float32', 'bfloat16')
CPU_KERNELS = ('auto', 'xla')
MODELS = ('PartFactorizedModel',)  # config.model: the original's one model class

# Options a resumed run may change: length, logging, machine and file locations.
RESUMABLE_OPTIONS = frozenset(
  {
    'epochs',
    'num_train_steps',
    'time_limit_minutes',
    'save_every_steps',
    'max_to_keep',
    'log_every_steps',
    'log_images_every_steps',
    'val_every_steps',
    'val_freq',
    'save_freq',
    'num_val_images',
    'eval_every_steps',
    'eval_at_end',
    'num_workers',
    'prefetch_batches',
    'reduced_decode',
    'compute_dtype',
    'coordinator_address',
    'num_processes',
    'process_id',
    'local_rank',
    'use_DDP',
    'data_dir',
    'dataset_path',
    'save_path',
    'torch_home',
    'vgg19_path',
    'resume_ckpt',
    'resume_ckpt_D',
    'resume_ckpt_opt_G',
    'resume_ckpt_opt_D',
  }
)


def plain_config(config: ml_collections.ConfigDict) -> dict:
  """The configuration as JSON values (tuples as lists), as config.json and each checkpoint record it."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


class ConfigError(user_errors.UserError, ValueError):
  """A configuration value that cannot work."""


def _widths(config, name, count):
  values = tuple(config[name])
  if len(values) != count or any(int(v) < 1 for v in values):
    raise ConfigError(f'config.{name} must be {count} positive widths, got {values}.')


def validate_model_config(config: ml_collections.ConfigDict) -> None:
  """Checks the options that shape the networks."""
  if config.get('model', MODELS[0]) not in MODELS:
    raise ConfigError(f"config.model must be one of {MODELS} (the original's only model), got {config.model!r}.")
  if not isinstance(config.img_size, int) or config.img_size <= 0 or config.img_size % 16:
    raise ConfigError(
      f'config.img_size must be a positive multiple of 16 (the generator starts at 1/16 of '
      f'the image), got {config.img_size!r}; try 64 or 128.'
    )
  if config.n_landmarks < 1:
    raise ConfigError(f'config.n_landmarks must be at least 1, got {config.n_landmarks}.')
  for name in (
    'n_filters',
    'ngc',
    'ndf',
    'num_D',
    'n_layers_D',
    'appearance_decoder_width',
    'spade_hidden',
    'low_res_mask_width',
  ):
    if config[name] < 1:
      raise ConfigError(f'config.{name} must be at least 1, got {config[name]}.')
  if config.ngc < 2:
    raise ConfigError(
      f'config.ngc must be at least 2 (the last generator block has ngc // 2 channels), got {config.ngc}.'
    )
  for name in ('nsf', 'naf', 'background_filters', 'mask_filters'):
    if config[name] < 0:
      raise ConfigError(f'config.{name} must be >= 0 (0 means twice the input channels), got {config[name]}.')
  _widths(config, 'shape_decoder_widths', 3)
  _widths(config, 'background_decoder_widths', 3)
  _widths(config, 'mask_decoder_widths', 3)
  if config.use_identity_covariance and config.fixed_covar <= 0:
    raise ConfigError(f'config.fixed_covar must be positive, got {config.fixed_covar}.')
  if config.gaussian_fg_mask and (not config.use_fg_bg_mask or config.low_res_mask):
    raise ConfigError(
      'config.gaussian_fg_mask replaces the mask network of config.use_fg_bg_mask: set '
      '--config.use_fg_bg_mask=True and --config.low_res_mask=False with it.'
    )
  if config.vgg not in VGG_LAYOUTS:
    raise ConfigError(f'config.vgg must be one of {VGG_LAYOUTS}, got {config.vgg!r}.')
  if config.compute_dtype not in COMPUTE_DTYPES:
    raise ConfigError(f'config.compute_dtype must be one of {COMPUTE_DTYPES}, got {config.compute_dtype!r}.')
  if config.get('cpu_kernels', 'auto') not in CPU_KERNELS:
    raise ConfigError(f'config.cpu_kernels must be one of {CPU_KERNELS}, got {config.cpu_kernels!r}.')


def validate_pair_config(config: ml_collections.ConfigDict) -> None:
  """Checks the options the input pipeline reads to draw training pairs; it calls this itself, since tools and
  tests build batches from configs that never pass `validate_data_config`."""
  if config.seed < 0:
    raise ConfigError(f'config.seed must be non-negative, got {config.seed}.')
  if not 0.0 <= config.flip_probability <= 1.0:
    raise ConfigError(f'config.flip_probability must lie in [0, 1], got {config.flip_probability}.')
  low, high = config.temporal_range
  if not 0 <= low < high:
    raise ConfigError(
      f'config.temporal_range must be (min, max) with 0 <= min < max, got {tuple(config.temporal_range)}.'
    )
  if config.num_workers < 0:
    raise ConfigError(
      f'config.num_workers must be 0 (training batches made in this process) or a number of '
      f'worker processes, got {config.num_workers}.'
    )


def validate_data_config(config: ml_collections.ConfigDict) -> None:
  """Checks the dataset choice and the input pipeline's options."""
  if config.dataset not in DATASETS:
    raise ConfigError(
      f'config.dataset must be one of {DATASETS}, got {config.dataset!r}; e.g. '
      '--config.dataset=humanoid_mocap (builds itself), or bbc_pose or video_folder with '
      '--config.dataset_path.'
    )
  if config.dataset == 'humanoid_mocap' and config.dataset_variant not in DATASET_VARIANTS:
    raise ConfigError(f'config.dataset_variant must be one of {DATASET_VARIANTS}, got {config.dataset_variant!r}.')
  if not isinstance(config.get('dataset_seed', 0), int) or config.get('dataset_seed', 0) < 0:
    raise ConfigError(f'config.dataset_seed must be a non-negative integer, got {config.dataset_seed!r}.')
  if config.batch_size < 1:
    raise ConfigError(f'config.batch_size (per device) must be at least 1, got {config.batch_size}.')
  if config.global_batch_size < 0:
    raise ConfigError(
      f'config.global_batch_size must be 0 (batch_size per device) or positive, got {config.global_batch_size}.'
    )
  validate_pair_config(config)
  for name in ('trans', 'scale', 'rot'):
    if config[f'{name}_lb'] > config[f'{name}_ub']:
      raise ConfigError(f'config.{name}_lb must not exceed config.{name}_ub.')
  if config.tps_perturb < 0 or not 0 <= 2 * config.tps_margin < config.img_size:
    raise ConfigError(
      f'config.tps_perturb must be non-negative and config.tps_margin must leave room for the '
      f'control grid (0 <= 2 * tps_margin < img_size = {config.img_size}); got '
      f'tps_margin={config.tps_margin}, tps_perturb={config.tps_perturb}.'
    )
  if not 0.0 < config.val_frac <= 1.0:
    raise ConfigError(f'config.val_frac must lie in (0, 1], got {config.val_frac}.')


def validate_training_config(config: ml_collections.ConfigDict) -> None:
  """Checks everything a training run needs."""
  validate_model_config(config)
  validate_data_config(config)
  if not (config.use_temporal or config.use_warped):
    raise ConfigError(
      'Training needs a source of pose variation: set --config.use_temporal=True (another '
      'frame of the video) and/or --config.use_warped=True (a thin-plate-spline warp).'
    )
  if not (config.use_vgg or config.use_gan):
    raise ConfigError('Training needs a loss: set --config.use_vgg=True and/or --config.use_gan=True.')
  if config.learning_rate <= 0:
    raise ConfigError(f'config.learning_rate must be positive, got {config.learning_rate}.')
  if config.num_train_steps == 0 or (config.num_train_steps < 0 and config.epochs < 1):
    raise ConfigError('Set a positive config.num_train_steps, or config.epochs with num_train_steps=-1.')
  if config.time_limit_minutes < 0:
    raise ConfigError(f'config.time_limit_minutes must be 0 (no limit) or positive, got {config.time_limit_minutes}.')


def with_device_batch(config: ml_collections.ConfigDict, device_count: int) -> ml_collections.ConfigDict:
  """A copy of `config` whose batch_size is the per-device batch: global_batch_size split over `device_count`
  devices when it is set, else batch_size as given. A global batch that does not split evenly is an error."""
  resolved = config.copy_and_resolve_references()
  total = config.global_batch_size
  if total > 0:
    if total % device_count:
      per_device = max(1, total // device_count)
      raise ConfigError(
        f'config.global_batch_size={total} does not split over {device_count} devices. Use a multiple of '
        f'{device_count} (e.g. --config.global_batch_size={per_device * device_count} or '
        f'{(per_device + 1) * device_count}), or --config.global_batch_size=0 with a per-device '
        '--config.batch_size.'
      )
    resolved.batch_size = total // device_count
  return resolved
