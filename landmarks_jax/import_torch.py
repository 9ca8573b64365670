"""Turns a checkpoint of the PyTorch original into a workdir that training and evaluation use as their own.

  python -m landmarks_jax.import_torch --config=configs/bbc.py --checkpoint=save_path/checkpoint_100.ckpt \
      [--discriminator=save_path/checkpoint_D_100.ckpt] --workdir=runs/imported
  python -m landmarks_jax.evaluate --workdir=runs/imported --config.dataset_path=/data/bbcpose

The config must describe the original run (n_landmarks, img_size, use_fg_bg_mask, low_res_mask, widths). The
workdir gets config.json and a step-0 checkpoint with the imported weights and fresh optimizer states, so
training there continues from the original's weights. PyTorch need not be installed.
"""

import os

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import train_state
from landmarks_jax.weights import pretrained

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  config_flags.DEFINE_config_file('config', None, 'Configuration of the original run.', lock_config=True)
  flags.DEFINE_string('checkpoint', None, "The original's model checkpoint (checkpoint_N.ckpt).")
  flags.DEFINE_string('discriminator', None, "The original's discriminator checkpoint, if any.")
  flags.DEFINE_string('workdir', None, 'New workdir to write (must hold no checkpoint yet).')
  flags.mark_flags_as_required(['config', 'checkpoint', 'workdir'])


def import_checkpoint(
  config: ml_collections.ConfigDict, checkpoint: str, workdir: str, discriminator: str | None = None
) -> int:
  """Writes `workdir` with the original's weights as its step-0 checkpoint; returns the step written."""
  config_checks.validate_model_config(config)
  if discriminator and not config.use_gan:
    raise ValueError(
      'A discriminator checkpoint was given but config.use_gan is False; pass --config.use_gan=True to keep it.'
    )
  ckpts = checkpoints.Checkpoints(workdir, writer=True)
  if ckpts.latest_step() is not None:
    raise FileExistsError(
      f'{workdir} already holds checkpoints (steps {ckpts.all_steps()}); import into a new '
      'workdir so nothing is overwritten.'
    )
  state = train_state.create_train_state(config)
  state = state.replace(generator=pretrained.generator_variables(checkpoint, config))
  if discriminator:
    state = state.replace(discriminator=pretrained.discriminator_variables(discriminator, config))
  checkpoints.write_or_check_config(workdir, config)
  ckpts.save(
    0,
    state,
    {
      'imported_from': os.path.abspath(checkpoint),
      'discriminator_from': os.path.abspath(discriminator) if discriminator else None,
      'input_position': 0,
      checkpoints.OPTIONS_KEY: config_checks.plain_config(config),
    },
  )
  ckpts.close()
  return 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  import_checkpoint(FLAGS.config, FLAGS.checkpoint, FLAGS.workdir, FLAGS.discriminator)
  logging.info('Wrote %s: the weights of %s as step 0.', FLAGS.workdir, FLAGS.checkpoint)


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
