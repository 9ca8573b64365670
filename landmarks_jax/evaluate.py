"""Evaluates a training run's landmarks from its checkpoint: BBC Pose accuracy or motion-capture metrics.

  python -m landmarks_jax.evaluate --workdir=runs/bbc [--config=configs/bbc.py] [--step=N]

Reads the run's config.json (or --config), restores the generator of the latest (or --step) checkpoint,
prepares the dataset, and writes <workdir>/eval/: metrics.json (printed too), BBC Pose's preds_test.mat and
preds_val.mat, and pictures of the test split. See `evaluation/landmark_eval.py` for the stages.
"""

import json
from typing import Sequence

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags

from landmarks_jax import checkpoints
from landmarks_jax import config_checks
from landmarks_jax import datasets
from landmarks_jax import distributed
from landmarks_jax.evaluation import landmark_eval

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  flags.DEFINE_string('workdir', None, 'The training run\'s folder (holding checkpoints/ and config.json).')
  config_flags.DEFINE_config_file('config', None, 'Configuration file (default: the workdir\'s config.json).',
                                  lock_config=True)
  flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
  flags.mark_flag_as_required('workdir')


def run(workdir: str, config: ml_collections.ConfigDict | None = None, step: int | None = None) -> dict:
  """The command without its flags: evaluates `step` (default latest) of `workdir`; returns the metrics."""
  config = config or checkpoints.read_config(workdir)
  distributed.initialize(config)
  config = config_checks.with_device_batch(config, jax.device_count())
  variables, step = landmark_eval.load_variables(workdir, step, config)
  builder = datasets.prepare_dataset(config)
  return landmark_eval.evaluate_landmarks(config, variables, workdir, step, builder=builder)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  try:
    metrics = run(FLAGS.workdir, FLAGS.config, FLAGS.step)
  except (FileNotFoundError, landmark_eval.CheckpointError, landmark_eval.VariablesMismatch,
          checkpoints.CheckpointUnreadable) as error:
    raise SystemExit(f'Error: {error}') from error
  if jax.process_index() == 0:
    print(json.dumps(metrics, indent=2))
    print(landmark_eval.summary(metrics))


if __name__ == '__main__':
  define_flags()
  app.run(main)
