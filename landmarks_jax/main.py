"""Trains the landmark model.

  python -m landmarks_jax.main --config=configs/humanoid_mocap.py --workdir=runs/mocap
  python -m landmarks_jax.main --config=configs/bbc.py --workdir=runs/bbc --config.dataset_path=/data/bbcpose

Any option is overridable as --config.NAME=VALUE (booleans both ways: --config.use_gan=False). Running again
with the same workdir resumes from its latest checkpoint.
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow (for TFDS and TensorBoard) logs from C++.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

from landmarks_jax import user_errors  # pylint: disable=g-import-not-at-top
from landmarks_jax.cpu import process_settings  # pylint: disable=g-import-not-at-top

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
  'workdir', os.path.join('runs', 'default'), 'Directory for checkpoints, logs, pictures and evaluation results.'
)
_XLA_CACHE = flags.DEFINE_string(
  'xla_cache_dir',
  os.path.join(os.path.expanduser('~'), '.cache', 'landmarks_jax', 'xla'),
  'Persistent cache of compiled programs, so that a resumed run starts quickly ("" disables it).',
)
flags.mark_flags_as_required(['config'])
user_errors.define_traceback_flag()


@user_errors.report_user_errors
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  process_settings.apply()
  # Imported here so that the distributed runtime starts before anything touches JAX's backends.
  import jax  # pylint: disable=g-import-not-at-top

  from landmarks_jax.evaluation import landmark_eval  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import distributed  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import logs  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import stop_signals  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import train  # pylint: disable=g-import-not-at-top

  logs.quiet_libraries()
  distributed.initialize(_CONFIG.value)
  if _XLA_CACHE.value:
    jax.config.update('jax_compilation_cache_dir', _XLA_CACHE.value)
  logging.info(
    'JAX process %d of %d; %d local devices, %d in all (%s).',
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
    jax.devices()[0].platform,
  )
  try:
    metrics = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except stop_signals.Stopped as stopped:
    print(stopped, file=sys.stderr, flush=True)
    sys.exit(stopped.exit_status)
  if metrics is not None and jax.process_index() == 0:
    print(landmark_eval.summary(metrics))
    print(f'All figures: {os.path.join(_WORKDIR.value, landmark_eval.EVAL_DIR, landmark_eval.METRICS_FILE)}')


def command():
  """The command line: flags, then `main`."""
  app.run(main)


if __name__ == '__main__':
  command()
