"""Shared kernel of pyd: errors, records, id rules and seams. Imports nothing from pyd."""
