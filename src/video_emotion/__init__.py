"""video-emotion: video emotion recognition and sentiment analysis with a tracked, reproducible pipeline."""

__version__ = "0.1.0"
