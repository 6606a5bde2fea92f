"""The one cost model, shared by a single fit and the search.

From the settings (the estimator's parameters, its loss and penalty) and the
data term: which solver ``optimizer`` stands for, when training stops,
where the learning rate starts, how averaging and the intercept's step are
taken.
"""
