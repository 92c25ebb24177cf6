"""Inference: a trained model bundle (`bundle`) applied to a video. `windows` streams the model's
frame windows with their face crops, `summary` turns readings into segments, a video-level summary
and tags, `analyze` orchestrates them into the analysis-result contract, `realface` checks a model
on real people."""
