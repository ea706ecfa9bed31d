"""One module per verb group; each command is a few lines over the library."""
