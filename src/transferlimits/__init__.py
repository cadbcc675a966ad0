"""transferlimits: why vision foundation models transfer unevenly (prostate MRI, ProFound vs ProViCNet).

Data flows one way: ``data`` -> ``models`` + ``training`` -> ``study`` -> ``metrics.json`` -> notebooks -> book.
"""

__version__ = "0.1.0"
