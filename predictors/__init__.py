"""Latency predictors from per-operator measurements on a target device.

* :mod:`predictors.kernels` -- operator graph -> kernels and their features, fusion rules;
* :mod:`predictors.modules` -- a kernel as a standalone module built from the static blocks;
* :mod:`predictors.backends` -- measurement backends (torch, onnxruntime) and the timing protocol;
* :mod:`predictors.profile` -- the device profile file (raw measurements, rules, metadata);
* :mod:`predictors.measure` -- the resumable measurement job behind ``nas device measure``;
* :mod:`predictors.positions` -- layer positions of a space, for vectorised prediction;
* :mod:`predictors.latency` -- :class:`~predictors.latency.LatencyPredictor`;
* :mod:`predictors.suite` -- kernel suites for phones: export, import of their timings;
* :mod:`predictors.tables` and :mod:`predictors.lut` -- published per-block tables (Pixel 4, Note10);
* :mod:`predictors.validate` -- end-to-end validation reports;
* :mod:`predictors.commands` -- the ``nas device`` command group.
"""
