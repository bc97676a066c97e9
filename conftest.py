"""Shared pytest set-up: fake devices and fresh random seeds.

Four fake CPU devices are configured before JAX initialises its backend, so
that data-parallel code is tested as it runs on a multi-device host.
Single-device code is unaffected: it runs on the first device. Tests draw
fresh random inputs every run; the seed is printed so that a failure
replays: `OCCNET_TEST_SEED=<seed> pytest <test>` fixes every seed to it.
"""

import os

import jax
import numpy as np
import pytest

jax.config.update('jax_num_cpu_devices', 4)


def _draw_seed() -> int:
  """$OCCNET_TEST_SEED when set (to replay a failure), else a fresh seed."""
  fixed = os.environ.get('OCCNET_TEST_SEED')
  if fixed is not None:
    return int(fixed)
  return int(np.random.SeedSequence().entropy % 2**32)


@pytest.fixture
def seed() -> int:
  """A fresh random seed per test, printed so that a failure can be replayed."""
  value = _draw_seed()
  print(f'seed = {value}')  # Shown by pytest when the test fails.
  return value


@pytest.fixture(scope='module')
def module_seed() -> int:
  """A fresh random seed shared by a module's fixtures, printed."""
  value = _draw_seed()
  print(f'module seed = {value}')
  return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
  """A numpy generator seeded by `seed`."""
  return np.random.default_rng(seed)
