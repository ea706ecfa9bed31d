"""The data layer: prices -> features -> contract -> dense panel -> day batches with their stock graphs."""
