"""drgn"""
