"""Plotting functions the notebooks call: ``data`` (phantom vs real), ``training`` (curves), ``alignment``.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()``.
"""
