"""How a forecast is shown: one text renderer and one figure, shared by live logging, the TensorBoard tab and
``curvecast analyze``.

- ``text.py``: a report as one log line or as a few lines, numbers formatted one way;
- ``band.py``: the band drawn around a forecast curve (the figure and the tab draw the same one);
- ``figure.py``: a matplotlib figure of a curve with its forecast, band, target and anomalies.

Numpy and matplotlib (loaded when a figure is drawn) only: neither torch nor Lightning.
"""
