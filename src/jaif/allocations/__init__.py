"""Allocations of GPU-hours and inference tokens to projects, with validity windows."""
