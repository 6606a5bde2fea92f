"""The data terms: a loss over the rows of ``X``.

Dense rows, CSR rows, the Gram matrix of the squared loss, rows streamed
from the host, and the column forms the search trains on: values,
gradients, Hessians, curvature, moments and duality gaps.
"""
