"""TensorBoard's ``curvecast`` tab: a dynamic plugin that draws each run's forecast from the run's own event files.

- :mod:`~curvecast.tensorboard_plugin.summary`: how the tab's data sits in an event file (JSON documents in string
  tensors tagged for the ``curvecast`` plugin); shared by the writer and the server.
  A live run's documents are built in :mod:`curvecast.integrations.tab_documents` and written by
  :class:`~curvecast.integrations.TensorBoardReporter`.
- :mod:`~curvecast.tensorboard_plugin.run_data`: one run's chart data, read through TensorBoard's data provider.
- :mod:`~curvecast.tensorboard_plugin.comparison`: the runs compared, ranked by forecast with each run's chance to end
  best (:mod:`curvecast.forecasting.ranking`, as ``curvecast analyze DIR`` ranks), the chosen ones on one chart.
- :mod:`~curvecast.tensorboard_plugin.documents`: each document read back, checked field by field and bounded;
  :mod:`~curvecast.tensorboard_plugin.thinning`: a long curve thinned to the extremes of its buckets.
- :mod:`~curvecast.tensorboard_plugin.plugin`: :class:`CurvecastPlugin`, the routes TensorBoard serves, registered
  under the ``tensorboard_plugins`` entry point.
- ``static/index.js``: the tab itself, a self-contained ES module drawing inline SVG.

None of it imports torch or Lightning: the TensorBoard process loads the plugin without them (``curvecast.forecasting``,
numpy and scipy, is imported at the first comparison, for the ranking).
"""
