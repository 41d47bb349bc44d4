"""custodes.reports"""
