"""The data as the estimators receive it.

Validation of ``X``, ``y`` and sample weights, devices and dtypes, the
array API (numpy, torch and the rest), conversions between them.
"""
