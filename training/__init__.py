"""Training sets, LightGBM models, calibration and evaluation against baselines and the truth."""
