"""Network builders of our own architectures (the published ones live in ``atomnet`` and ``atomsegnet``)."""
