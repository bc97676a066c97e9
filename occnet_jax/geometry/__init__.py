"""Multi-view geometry: cameras, trifocal tensor, triangulation, PnP."""

from occnet_jax.geometry.cameras import apply_affine
from occnet_jax.geometry.cameras import camera_center
from occnet_jax.geometry.cameras import crop_camera
from occnet_jax.geometry.cameras import crop_transform
from occnet_jax.geometry.cameras import intrinsics_matrix
from occnet_jax.geometry.cameras import look_at
from occnet_jax.geometry.cameras import normalizing_transform
from occnet_jax.geometry.cameras import perspective_projection
from occnet_jax.geometry.cameras import pose_center
from occnet_jax.geometry.cameras import project
from occnet_jax.geometry.cameras import projection_matrix
from occnet_jax.geometry.cameras import quaternion_to_rotation
from occnet_jax.geometry.cameras import rotation_to_quaternion
from occnet_jax.geometry.cameras import viewing_yaw
from occnet_jax.geometry.pnp import PnPError
from occnet_jax.geometry.pnp import PnPResult
from occnet_jax.geometry.pnp import solve_pnp
from occnet_jax.geometry.triangulation import triangulate
from occnet_jax.geometry.trifocal import normalized_trifocal_residual
from occnet_jax.geometry.trifocal import normalized_trifocal_transfer
from occnet_jax.geometry.trifocal import trifocal_point_residual
from occnet_jax.geometry.trifocal import trifocal_tensor
from occnet_jax.geometry.trifocal import trifocal_transfer
