"""custodes.ledger"""
