"""The elementwise parts of the model.

The losses (value and derivatives of each row's prediction), the penalties
(value, gradient and proximal step) and the step-size schedules, in torch.
"""
