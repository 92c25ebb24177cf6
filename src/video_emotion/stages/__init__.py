"""The DVC stages, one thin module each (ingest, validate, preprocess, train, crossval, evaluate), on
one runner (`runner`) that sets up parameters, paths, logging and the data key."""
