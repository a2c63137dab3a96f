"""Test and benchmark helpers that ship with the package (a fake oracle server)."""
