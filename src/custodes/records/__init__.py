"""custodes.records"""
