"""The search-space trade-off study (``nas study``): how latency, MACs, parameters and accuracy
move with each decision of a space, on each device, and how far devices disagree.

Modules, one idea each: :mod:`~nas.study.decisions` (archs as index rows over the space's
dimensions), :mod:`~nas.study.sampling` (stratified sample), :mod:`~nas.study.profiles`
(devices), :mod:`~nas.study.accuracy` (measured and predicted accuracy),
:mod:`~nas.study.table` (objectives per arch), :mod:`~nas.study.effects` (paired effects),
:mod:`~nas.study.importance` (Optuna importances), :mod:`~nas.study.flops` (MACs vs latency),
:mod:`~nas.study.devices` (devices disagree), :mod:`~nas.study.breakdown` (where the time goes),
:mod:`~nas.study.fronts` (fronts), :mod:`~nas.study.summary`, :mod:`~nas.study.report`
(Markdown and HTML), :mod:`~nas.study.runner` (steps, resume, progress) and
:mod:`~nas.study.command` (the CLI).
"""

from nas.study.runner import StudySettings, run_study

__all__ = ["StudySettings", "run_study"]
