"""Hyperparameter tuning's pure parts: the search space, the strategies, the stopping rules.

Nothing here keeps state between calls: every suggestion and every stop is computed from the
trials as stored (their hyperparameters, final objectives and metric series), so the tuner is
level-triggered and survives a control-plane restart (``controller/plan/tuning.py``).
"""
