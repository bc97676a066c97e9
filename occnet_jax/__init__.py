"""occnet_jax: Occlusion-Net (Reddy, Vo and Narasimhan, CVPR 2019) in JAX.

2D and 3D localisation of occluded vehicle keypoints with graph networks,
supervised for occluded points by a multi-view trifocal tensor loss.
"""
