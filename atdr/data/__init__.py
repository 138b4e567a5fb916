"""Data pipeline: AudioSet's formats (label csv, segment csv, json datafiles), audio loading,
feature front-ends, sample weights, normalisation stats and the training `Dataset`."""
