"""The operator CLI ``atft``: a thin layer over the atft library (and, later, the cluster)."""
