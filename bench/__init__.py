"""Benchmarks: `python -m bench` runs every module here whose name does not start with "_".

Each benchmark module exposes `run(database) -> int` (0 on success) and only prints
figures: speed targets are reported as met or not met, never asserted. The runner
gives them one throwaway database (`bench/_database.py`), never the development one.
"""
