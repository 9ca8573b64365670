"""Landmark evaluation: dump landmarks, regress joints, map to pixels, score, and draw."""
