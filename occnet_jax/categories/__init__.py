"""The keypoint categories, one module each, looked up by name.

`config.category` names one. A category module defines a
`keypoints.Category` (and, to be rendered, its `keypoints.Synthesis`); the
rest of the code only reads it. To add one, write its module next to
`car.py` and add its category to `_CATEGORIES` below.
"""

from occnet_jax import errors
from occnet_jax import keypoints
from occnet_jax.categories import car
from occnet_jax.categories import chair

_CATEGORIES = {category.name: category for category in (car.CAR, chair.CHAIR)}


def names() -> tuple[str, ...]:
  """The registered category names."""
  return tuple(sorted(_CATEGORIES))


def get_category(name: str) -> keypoints.Category:
  try:
    return _CATEGORIES[name]
  except KeyError:
    raise errors.UserError(
        f'Unknown keypoint category {name!r}; known: {list(names())}.'
    ) from None
