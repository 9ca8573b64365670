"""Evaluates a training run's landmarks from its checkpoint: BBC Pose accuracy or motion-capture metrics.

  python -m landmarks_jax.evaluate --workdir=runs/bbc [--config=configs/bbc.py] [--step=N]

Reads the run's config.json (or --config), restores the generator of the latest (or --step) checkpoint,
prepares the dataset, and writes <workdir>/eval/: metrics.json (printed too), BBC Pose's preds_test.mat and
preds_val.mat, and pictures of the test split. See `evaluation/landmark_eval.py` for the stages.
"""

import json
import sys
from typing import Sequence

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags

from landmarks_jax import user_errors
from landmarks_jax.cpu import kernels
from landmarks_jax.cpu import process_settings
from landmarks_jax.data import datasets
from landmarks_jax.evaluation import landmark_eval
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import distributed
from landmarks_jax.training import logs

FLAGS = flags.FLAGS


def _given(argv: Sequence[str], name: str) -> str | None:
  """The value of --name on a command line (either --name=VALUE or --name VALUE), or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def define_flags(argv: Sequence[str] | None = None) -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone.

  Without --config=FILE, --config is the workdir's config.json, so that single options can be overridden
  (--config.dataset_seed=1 --config.data_dir=D evaluates on other subjects).
  """
  argv = sys.argv if argv is None else argv
  flags.DEFINE_string('workdir', None, "The training run's folder (holding checkpoints/ and config.json).")
  workdir = _given(argv, 'workdir')
  run_config = None
  if _given(argv, 'config') is None and workdir:
    try:
      run_config = checkpoints.read_config(workdir)
    except (FileNotFoundError, checkpoints.ConfigMismatch):
      pass  # reported by `run`, under the command's error handling
  if run_config is not None:
    config_flags.DEFINE_config_dict(
      'config',
      run_config,
      "The run's configuration (its config.json); change an option with --config.NAME=VALUE.",
      lock_config=True,
    )
  else:
    config_flags.DEFINE_config_file(
      'config', None, "Configuration file (default: the workdir's config.json).", lock_config=True
    )
  flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
  flags.mark_flag_as_required('workdir')
  user_errors.define_traceback_flag()


def run(workdir: str, config: ml_collections.ConfigDict | None = None, step: int | None = None) -> dict:
  """The command without its flags: evaluates `step` (default latest) of `workdir`; returns the metrics."""
  config = config or checkpoints.read_config(workdir)
  distributed.initialize(config)
  config = config_checks.with_device_batch(config, jax.device_count())
  kernels.select_for(config)
  variables, step = landmark_eval.load_variables(workdir, step, config)
  builder = datasets.prepare_dataset(config)
  return landmark_eval.evaluate_landmarks(config, variables, workdir, step, builder=builder)


@user_errors.report_user_errors
def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  process_settings.apply()
  logs.quiet_libraries()
  metrics = run(FLAGS.workdir, FLAGS.config, FLAGS.step)
  if jax.process_index() == 0:
    print(json.dumps(metrics, indent=2))
    print(landmark_eval.summary(metrics))


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
