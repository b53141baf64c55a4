"""Volumes: named and anonymous volumes over the volume driver plugins."""
