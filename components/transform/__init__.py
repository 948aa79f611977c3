"""Step 3, transform: tensorflow-transform features, the feature-column way, and image decode and resize.

`module.preprocessing_fn` is the Transform module file, a thin adapter over `features`; `settings` holds the
`features:` config section; `cache.Executor` reuses a transform graph whose inputs have not changed.
"""
