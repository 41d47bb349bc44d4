"""custodes.access"""
