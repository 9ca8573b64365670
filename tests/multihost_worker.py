"""One process of a multi-host test run: joins jax.distributed, trains, and saves its final parameters.

python tests/multihost_worker.py WORKDIR DATA_DIR OUTPUT.npz NUM_STEPS [COORDINATOR NUM_PROCESSES PROCESS_ID]
"""

import sys

import flax
import numpy as np


def main(workdir, data_dir, output, num_steps, coordinator='', num_processes='0', process_id='-1'):
  from landmarks_jax.configs import test as test_config  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import device_layout  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import distributed  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import train  # pylint: disable=g-import-not-at-top

  config = test_config.get_config()
  config.data_dir = data_dir
  config.num_train_steps = int(num_steps)
  config.cpu_kernels = 'xla'  # see test_multihost.py
  config.eval_at_end = False
  config.val_every_steps = -1  # the test is about the step and the checkpoints: no other programs to compile
  config.log_images_every_steps = 0
  config.coordinator_address, config.num_processes, config.process_id = (
    coordinator,
    int(num_processes),
    int(process_id),
  )
  distributed.initialize(config)
  trainer = train.Trainer(config, workdir)
  trainer.run()
  generator = device_layout.unreplicate(trainer.state.generator)
  flat = flax.traverse_util.flatten_dict(generator, sep='/')
  np.savez(output, **flat)


if __name__ == '__main__':
  main(*sys.argv[1:])
