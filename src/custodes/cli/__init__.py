"""custodes.cli"""
