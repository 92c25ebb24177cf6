"""Serving: the BentoML service (`service`) with its web page (`web/`), API-key authentication
(`auth`) and the import of a registered model into the BentoML store (`bento_store`)."""
