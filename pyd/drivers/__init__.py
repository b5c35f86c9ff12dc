"""Drivers: thin adapters to the kernel and external programs. They hold no Docker rules."""
