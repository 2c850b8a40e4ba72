"""Vendor clients behind one protocol (:mod:`vendors.base`), and a RunningHub emulator for demo and tests."""
