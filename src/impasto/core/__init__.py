"""The numerical core: VGG-19 and its weights, devices, loss maths, L-BFGS, colour, regions, tiles, scales.

Nothing here knows :class:`impasto.options.Options`: functions take plain numbers and tensors.
"""
