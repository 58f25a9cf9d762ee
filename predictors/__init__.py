"""Latency predictors: published per-block lookup tables (:mod:`predictors.lut`)."""
