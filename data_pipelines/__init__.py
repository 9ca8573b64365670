"""TFDS dataset builders: BBC Pose (manual download) and the embedded humanoid motion-capture dataset."""
