"""Spatial: risk regions, communities, point indexes, the retroactive sweep and map drawing.

No broker and no pipeline imports: arrays and GeoDataFrames in, arrays and frames out.
"""
