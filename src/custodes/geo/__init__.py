"""custodes.geo"""
