"""Neural estimators: the Keras builders (`models`) and how they are trained (`training`)."""
