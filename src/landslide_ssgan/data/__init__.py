"""The data layer: the only code that touches rasterio and vector files.

Everything downstream sees numpy arrays plus a small `Grid` (CRS, transform, size, band names).
"""
