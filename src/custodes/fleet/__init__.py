"""custodes.fleet"""
