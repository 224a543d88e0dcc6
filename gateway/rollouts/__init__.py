"""Editing the split over time: the edit engine, the controller, its metrics."""
