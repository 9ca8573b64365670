"""The environment for a test's subprocess: this session's XLA flags with another count of CPU devices."""

import os
import re

DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'


def with_devices(count: int) -> dict[str, str]:
  """os.environ with XLA_FLAGS asking for `count` CPU devices, every other flag kept."""
  others = re.sub(rf'{DEVICE_COUNT_FLAG}=\d+', '', os.environ.get('XLA_FLAGS', '')).split()
  return dict(os.environ, XLA_FLAGS=' '.join([f'{DEVICE_COUNT_FLAG}={count}'] + others))
