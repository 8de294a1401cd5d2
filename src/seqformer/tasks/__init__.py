"""Task definitions (model + loss + data + evaluation) plugged into the shared training engine."""
